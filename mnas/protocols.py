"""The typed seams between mnas's parts: what a search, NetAdapt or a replay may rely on.

Three roles meet in every run (see :class:`mnas.search.runner.Components`):

=====================  ===============================================  ================================
role                   what it must offer                               shipped implementation
=====================  ===============================================  ================================
``LatencyModel``       ``device``; ``predict(net) -> ms``;              :class:`mnas.latency.Predictor`
                       ``predict_many(nets) -> array``; ``missing(net)``
                       (op keys it cannot price, ``[]`` if none)
``AccuracyEvaluator``  ``name``; ``config()``;                          :class:`mnas.accuracy.Evaluator`
                       ``evaluate(net, sample) -> EvalResult``;
                       ``evaluate_many(nets, samples)``
``Space``              ``name``; ``choices()`` (named options, walk     :class:`mnas.space.SearchSpace`
                       order); ``sample(rng)``; ``decode(sample)``;
                       ``encode_string``/``decode_string``
=====================  ===============================================  ================================

They are :class:`typing.Protocol` s, so anything with these members fits: no
base class to inherit (though subclassing :class:`mnas.accuracy.Evaluator` gives
caching, validation and option checks for free). They are ``runtime_checkable``
(``isinstance(obj, LatencyModel)`` checks the members are present, not their
signatures); the contract tests in ``tests/test_contracts.py`` check behaviour.

:class:`EvalResult` is a :class:`typing.TypedDict`: at run time an ordinary
``dict`` (JSON, caches and ``result["top1"]`` keep working), to a type checker
the promised keys. Nothing here imports torch or reads a file.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, Iterable, Mapping, NotRequired, Protocol, Sequence, TypedDict, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy as np

    from mnas.arch import Network

__all__ = ["AccuracyEvaluator", "ChoicePoint", "EvalResult", "LatencyModel", "Space"]


class EvalResult(TypedDict):
    """What an accuracy evaluator returns: ``top1`` in percent, ``loss`` (NaN if none), ``cost_s`` spent.

    ``evaluator`` (the kind) and ``cached`` (served from the cache) are added by
    :meth:`mnas.accuracy.Evaluator.evaluate`. The type is open: an evaluator may add
    its own keys (``epochs``, ``model``, ...), read as ``result["model"]`` (PEP 728's
    ``extra_items``; mypy's ``typeddict-item`` check is off for this reason).
    """

    top1: float
    loss: float
    cost_s: float
    score: NotRequired[float]  # what a search maximises when it is not top1 (percent, monotone in the signal)
    evaluator: NotRequired[str]
    cached: NotRequired[bool]


@runtime_checkable
class LatencyModel(Protocol):
    """Latency of a network on one device, in ms."""

    @property
    def device(self) -> str: ...

    def predict(self, net: Network) -> float: ...

    def predict_many(self, nets: Iterable[Network]) -> np.ndarray: ...

    def missing(self, net: Network) -> list[str]:
        """Op keys of ``net`` this model cannot price (``predict`` raises naming them); ``[]`` if none.

        A model that prices one space only may raise :class:`~mnas.errors.MnasError` for a
        network outside it. (Optional, not part of the protocol: ``compile_space(space)``
        returning a vectorised predictor over that space's samples, used by fast searches.)
        """
        ...


@runtime_checkable
class AccuracyEvaluator(Protocol):
    """An accuracy signal: a network (or a space sample) in, an :class:`EvalResult` out."""

    @property
    def name(self) -> str: ...

    def config(self) -> dict[str, Any]:
        """Everything that changes a result (what a cache key must include)."""
        ...

    def evaluate(self, net: Network | None, sample: dict | None = None) -> EvalResult: ...

    def evaluate_many(self, nets: Sequence[Network | None],
                      samples: Sequence[dict | None] | None = None) -> Sequence[Mapping[str, Any]]:
        """One result per network (``evaluate``'s numbers; a batch path may share work)."""
        ...


@runtime_checkable
class ChoicePoint(Protocol):
    """One named choice of a space and its options, in file order."""

    @property
    def name(self) -> str: ...

    @property
    def options(self) -> tuple: ...


@runtime_checkable
class Space(Protocol):
    """A search space: named choice points walked in a fixed order, decoded to networks."""

    @property
    def name(self) -> str: ...

    def choices(self) -> Sequence[ChoicePoint]: ...

    def sample(self, rng: random.Random) -> dict: ...

    def decode(self, sample: Mapping[str, Any]) -> Network: ...

    def encode_string(self, sample: Mapping[str, Any]) -> str: ...

    def decode_string(self, code: str) -> dict: ...
