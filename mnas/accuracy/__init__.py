"""Accuracy signals behind one interface: proxy training, supernet, predictor, benchmark table.

``get_evaluator(kind, space=None, **options)`` returns an :class:`Evaluator` whose
``evaluate(net, sample=None)`` gives ``{"top1": percent, "loss", "cost_s", ...}``,
cached by architecture. The implementations (and torch) are imported only when
an evaluator of that kind is created.
"""

from mnas.accuracy.base import EVALUATORS, Evaluator, ResultCache, evaluator_options, get_evaluator

__all__ = ["EVALUATORS", "Evaluator", "ResultCache", "evaluator_options", "get_evaluator"]
