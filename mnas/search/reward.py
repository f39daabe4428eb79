"""MnasNet's latency-aware reward, and the multi-objective alternative.

A single-objective search maximises

    reward(m) = ACC(m) × (LAT(m) / TAR) ** w,   w = α if LAT(m) <= TAR else β

(Tan et al., MnasNet, CVPR 2019, eq. 2). Presets:

==========  =========  =========  ============================================
``soft``    α = −0.07  β = −0.07  MnasNet's soft constraint
``hard``    α = 0      β = −1     no gain below the target, a steep penalty above
``v3-small``α = −0.15  β = −0.15  MobileNetV3-Small's block search (Howard et al. 2019)
``pareto``  —          —          no scalarisation: maximise accuracy, minimise latency
==========  =========  =========  ============================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mnas.errors import MnasError

PRESETS: dict[str, tuple[float, float] | None] = {
    "soft": (-0.07, -0.07),
    "hard": (0.0, -1.0),
    "v3-small": (-0.15, -0.15),
    "pareto": None,
}


def mnas_reward(accuracy: float, latency_ms: float, target_ms: float, alpha: float, beta: float) -> float:
    """``accuracy × (latency_ms / target_ms) ** w`` with ``w = alpha`` at or below the target, else ``beta``."""
    if target_ms <= 0:
        raise MnasError(f"target latency must be positive, got {target_ms} ms")
    if latency_ms <= 0:
        raise MnasError(f"latency must be positive, got {latency_ms} ms")
    w = alpha if latency_ms <= target_ms else beta
    return float(accuracy) * (float(latency_ms) / float(target_ms)) ** w


@dataclass(frozen=True)
class Reward:
    """A named reward: scalar (``alpha``/``beta`` set) or multi-objective (``pareto``)."""

    name: str
    target_ms: float | None
    alpha: float | None = None
    beta: float | None = None

    @property
    def multi_objective(self) -> bool:
        return self.alpha is None

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        """Optuna study directions: one for the scalar reward, (accuracy, latency) for ``pareto``."""
        return ["maximize", "minimize"] if self.multi_objective else ["maximize"]

    def __call__(self, accuracy: float, latency_ms: float) -> float:
        """The scalar reward; for ``pareto`` runs it is still reported (against the target, soft preset)."""
        if self.target_ms is None:
            return float(accuracy)
        a, b = (self.alpha, self.beta) if not self.multi_objective else PRESETS["soft"]  # type: ignore[misc]
        return mnas_reward(accuracy, latency_ms, self.target_ms, a, b)

    def objectives(self, accuracy: float, latency_ms: float) -> float | tuple[float, float]:
        """What the Optuna study optimises for one trial."""
        if self.multi_objective:
            return float(accuracy), float(latency_ms)
        return self(accuracy, latency_ms)


def get_reward(name: str, target_ms: float | None, alpha: float | None = None, beta: float | None = None) -> Reward:
    """A preset by name (``soft``, ``hard``, ``v3-small``, ``pareto``) or ``custom`` with ``alpha``/``beta``."""
    if name == "custom":
        if alpha is None or beta is None:
            raise MnasError("reward 'custom' needs both alpha and beta (e.g. --alpha -0.07 --beta -0.07)")
        if target_ms is None:
            raise MnasError("reward 'custom' needs a latency target (--target-ms)")
        return Reward(name, float(target_ms), float(alpha), float(beta))
    if name not in PRESETS:
        raise MnasError(f"unknown reward {name!r} (choose one of {', '.join([*PRESETS, 'custom'])})")
    if alpha is not None or beta is not None:
        raise MnasError(f"reward {name!r} is a preset: pass alpha/beta only with reward 'custom'")
    preset = PRESETS[name]
    if preset is None:
        return Reward(name, None if target_ms is None else float(target_ms))
    if target_ms is None:
        raise MnasError(f"reward {name!r} needs a latency target (--target-ms)")
    if target_ms <= 0:
        raise MnasError(f"target latency must be positive, got {target_ms} ms")
    return Reward(name, float(target_ms), preset[0], preset[1])
