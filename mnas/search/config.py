"""The typed configuration of one search: loadable from YAML, overridable by flags, saved with the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mnas.configs import DictConfig
from mnas.errors import MnasError


# space -> the reward its paper searched it with (others: MobileNetV3-Small's w = -0.15). MnasNet's spaces get
# MnasNet's soft constraint (w = -0.07): with w = -0.15 a search of Accel-NASBench's space on pixel1 at 75 ms ends
# near 35 ms, trading accuracy for latency it was not asked to save.
SPACE_REWARDS: dict[str, str] = {"anb": "soft", "mnasnet": "soft"}
DEFAULT_REWARD = "v3-small"


def default_reward(space: str | None) -> str:
    """The reward a search of ``space`` (a name or a YAML path) uses when none is given."""
    return SPACE_REWARDS.get(Path(str(space)).stem if space else "", DEFAULT_REWARD)


@dataclass
class SearchConfig(DictConfig):
    """Everything that defines a search; ``config.yaml`` in the run folder is this, re-runnable."""

    _field_noun = "setting"

    target_ms: float | None = None
    space: str = "v3_small"
    layerwise: bool = False
    device: str = "pixel1"
    evaluator: str | None = None  # None: the space's default (mnas.accuracy.base.default_evaluator)
    evaluator_options: dict = field(default_factory=dict)
    dataset: str | None = None
    data_dir: str | None = None
    strategy: str | None = None  # None: evolution, or tpe for the multi-objective 'pareto' reward
    strategy_options: dict = field(default_factory=dict)
    trials: int = 300
    reward: str | None = None  # None: the space's paper reward (SPACE_REWARDS), v3-small elsewhere
    alpha: float | None = None
    beta: float | None = None
    seed: int = 0
    out: str | None = None
    # where trials live: an RDB URL, "journal:FILE" or "memory" (not resumable); default: trials.journal
    # (instant evaluators) or trials.db (SQLite with heartbeats, expensive evaluators) in the run folder
    storage: str | None = None
    study_name: str = "mnas-search"
    batch: int | None = None  # trials asked, measured and stored per round; None: the strategy's default
    window: int | None = None  # the strategy sees the newest `window` trials (None: tpe 500, others all)
    # proposals over the latency target are rejected before their accuracy is measured (mnas/search/screen.py);
    # None: on for the hard reward (alpha = 0, beta <= -1), off otherwise
    screen: bool | None = None
    screen_tries: int = 100  # proposals per trial before the last one is repaired
    backend: str = "local"
    address: str | None = None
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    top: int = 5
    heartbeat_interval: int = 5
    grace_period: int = 15
    max_retry: int = 3

    def __post_init__(self) -> None:
        if self.evaluator is None:
            from mnas.accuracy.base import default_evaluator

            self.evaluator = default_evaluator(self.space)
        if self.reward is None:
            self.reward = default_reward(self.space)
        if self.strategy is None:
            # the best of benchmarks/bench_strategies.py on NAS-Bench-Macro for each mode
            self.strategy = "tpe" if self.reward == "pareto" else "evolution"
        self.validate()

    def validate(self) -> None:
        if self.trials < 1:
            raise MnasError(f"--trials must be >= 1, got {self.trials}")
        if self.target_ms is not None and self.target_ms <= 0:
            raise MnasError(f"--target-ms must be positive, got {self.target_ms}")
        from mnas.search.reward import PRESETS
        from mnas.search.strategies import STRATEGIES

        if self.strategy not in STRATEGIES:
            raise MnasError(f"unknown strategy {self.strategy!r} (choose one of {', '.join(STRATEGIES)})")
        if self.reward not in PRESETS and self.reward != "custom":
            raise MnasError(f"unknown reward {self.reward!r} (choose one of {', '.join([*PRESETS, 'custom'])})")
        if self.batch is not None and (isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch < 1):
            raise MnasError(f"--batch must be a whole number >= 1, got {self.batch!r}")
        if self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 2):
            raise MnasError(f"window must be a whole number >= 2, got {self.window!r}")
        if self.screen is not None and not isinstance(self.screen, bool):
            raise MnasError(f"screen must be true, false or null (the reward's default), got {self.screen!r}")
        if isinstance(self.screen_tries, bool) or not isinstance(self.screen_tries, int) or self.screen_tries < 1:
            raise MnasError(f"screen_tries must be a whole number >= 1, got {self.screen_tries!r}")
        if self.backend not in ("local", "ray"):
            raise MnasError(f"--backend must be 'local' or 'ray', got {self.backend!r}")
        if self.gpus_per_trial < 0:
            raise MnasError(f"--gpus-per-trial must be >= 0, got {self.gpus_per_trial}")
        if self.top < 1:
            raise MnasError(f"top must be >= 1, got {self.top}")
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise MnasError("heartbeat_interval must be >= 1 s and grace_period longer than it")
        for name in ("evaluator_options", "strategy_options"):
            if not isinstance(getattr(self, name), dict):
                raise MnasError(f"{name} must be a mapping of option -> value")

    def yaml_header(self, path: str | Path) -> str:
        """The comment line above the settings in a saved ``config.yaml``."""
        return "# mnas search settings; re-run with: mnas search --config " + str(path) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the settings to ``path`` (a run folder's ``config.yaml`` goes through :class:`mnas.run.RunDir`)."""
        from mnas.run import RunDir

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return RunDir(path.parent).save_config(self, name=path.name)

    @classmethod
    def load(cls, path: str | Path) -> "SearchConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            from mnas.io import not_a_file

            raise not_a_file(path, "a search config file")
        try:
            from mnas.io import read_text_file

            from mnas.io import safe_yaml

            data = safe_yaml(read_text_file(path, "search config YAML"), path)
        except yaml.YAMLError as e:
            raise MnasError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        return cls.from_dict(data or {}, where=str(path))
