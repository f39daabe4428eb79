"""A replay's settings: which replay, its budget (the one table in :mod:`mnas.run`), and the published
networks it is compared with."""

from __future__ import annotations

from dataclasses import dataclass, field

from mnas.configs import DictConfig
from mnas.errors import MnasError
from mnas.run import BUDGETS, Budget  # noqa: F401  (the one budget table, shared with NetAdapt)

REPLAYS = ("v3-large", "v3-small")

# replay -> (seed or search space, published result, evaluator space)
PUBLISHED = {"v3-large": "mobilenet_v3_large", "v3-small": "mobilenet_v3_small"}
SPACE = {"v3-large": "v3_large", "v3-small": "v3_small"}
# drawn beside each replay: its published V3, and the networks the paper compares with
REFERENCES = {"v3-large": ("mobilenet_v3_large", "mobilenet_v2", "mnasnet_a1"),
              "v3-small": ("mobilenet_v3_small", "mobilenet_v2", "mnasnet_a1")}
V3_SMALL_TARGET_MS = 15.8  # the paper's V3-Small on Pixel-1 (final version, Table 3)
V3_SMALL_REWARD = "v3-small"  # w = -0.15




@dataclass
class ReplayConfig(DictConfig):
    """Everything that changes a replay's result (saved as ``config.yaml``)."""

    replay: str
    budget: str = "default"
    device: str = "pixel1"
    evaluator: str | None = None  # None: the budget's
    evaluator_options: dict = field(default_factory=dict)
    target_ms: float | None = None  # NetAdapt target; None: the published V3's predicted latency
    search_target_ms: float = V3_SMALL_TARGET_MS
    delta: float | None = None
    trials: int | None = None
    strategy: str | None = None
    backend: str | None = None
    dataset: str | None = None  # proxy data for training evaluators (see `mnas eval --help`)
    data_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.replay not in REPLAYS:
            raise MnasError(f"unknown replay {self.replay!r} (choose one of {', '.join(REPLAYS)})")
        if self.budget not in BUDGETS:
            raise MnasError(f"unknown budget {self.budget!r} (choose one of {', '.join(BUDGETS)})")
        b = BUDGETS[self.budget]
        for k in ("evaluator", "delta", "trials", "strategy", "backend"):
            if getattr(self, k) is None:
                setattr(self, k, getattr(b, k))
        if self.budget == "paper" and self.evaluator == "train":
            self.evaluator_options = {"epochs": 5.0, **self.evaluator_options}  # MnasNet: 5 epochs per sampled model
        if self.target_ms is not None and self.target_ms <= 0:
            raise MnasError(f"--target-ms must be positive, got {self.target_ms}")
        if self.trials < 1:
            raise MnasError(f"--trials must be at least 1, got {self.trials}")

    @property
    def published(self) -> str:
        return PUBLISHED[self.replay]

    @property
    def space(self) -> str:
        return SPACE[self.replay]


