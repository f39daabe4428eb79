"""The shipped implementations fit the typed seams of :mod:`mnas.protocols`: checked by mypy, never run.

:mod:`mnas.protocols` is a leaf (it imports nothing of mnas at run time), so the
implementations import it and not the other way round; this module, which
nothing imports, is where the type checker sees both sides. A change that makes
:class:`~mnas.latency.Predictor`, the surrogate devices, :class:`~mnas.accuracy.Evaluator`
or :class:`~mnas.space.SearchSpace` stop fitting its protocol fails ``make typecheck``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from mnas.accuracy.base import Evaluator
    from mnas.latency.predictor import Predictor
    from mnas.latency.surrogate import AnbDevicePredictor, MaddsPredictor
    from mnas.protocols import AccuracyEvaluator, LatencyModel, Space
    from mnas.space import SearchSpace

    def _shipped_implementations_fit(table: Predictor, anb: AnbDevicePredictor, madds: MaddsPredictor,
                                     evaluator: Evaluator, space: SearchSpace) -> None:
        latency: list[LatencyModel] = [table, anb, madds]
        accuracy: AccuracyEvaluator = evaluator
        spaces: Space = space
        del latency, accuracy, spaces
