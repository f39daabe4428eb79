"""The typed configuration of one search: loadable from YAML, overridable by flags, saved with the run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mnas.configs import DictConfig
from mnas.errors import MnasError


@dataclass
class SearchConfig(DictConfig):
    """Everything that defines a search; ``config.yaml`` in the run folder is this, re-runnable."""

    _field_noun = "setting"

    target_ms: float | None = None
    space: str = "v3_small"
    layerwise: bool = False
    device: str = "pixel1"
    evaluator: str = "predictor"
    evaluator_options: dict = field(default_factory=dict)
    dataset: str | None = None
    data_dir: str | None = None
    strategy: str | None = None  # None: evolution, or tpe for the multi-objective 'pareto' reward
    strategy_options: dict = field(default_factory=dict)
    trials: int = 300
    reward: str = "v3-small"
    alpha: float | None = None
    beta: float | None = None
    seed: int = 0
    out: str | None = None
    storage: str | None = None  # RDB URL; default: sqlite file trials.db in the run folder
    study_name: str = "mnas-search"
    backend: str = "local"
    address: str | None = None
    gpus_per_trial: float = 0.0
    cpus_per_trial: float = 1.0
    top: int = 5
    heartbeat_interval: int = 5
    grace_period: int = 15
    max_retry: int = 3

    def __post_init__(self) -> None:
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

    def save(self, path: str | Path) -> Path:
        import yaml

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "# mnas search settings; re-run with: mnas search --config " + str(path) + "\n"
        path.write_text(header + yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "SearchConfig":
        import yaml

        path = Path(path)
        if not path.is_file():
            raise MnasError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise MnasError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        return cls.from_dict(data or {}, where=str(path))
