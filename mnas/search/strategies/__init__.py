"""Search strategies: Optuna samplers behind one name -> loader table.

Every strategy is an :class:`optuna.samplers.BaseSampler`, so the same object
drives a local study (``study.ask()``/``study.tell()``, RDB storage, resume,
plots) and a Ray Tune run (``OptunaSearch(sampler=...)``). Each owns its seeded
random state: the same seed and the same told values give the same trials.

=================  ==============================================================
``rl``             MnasNet's controller: a recurrent policy trained with PPO
``evolution``      regularised (aging) evolution, Real et al. 2019
``tpe``            Optuna's Tree-structured Parzen Estimator
``nsga2``          Optuna's NSGA-II (made for multi-objective runs)
``random``         uniform random sampling
``bo``             model-based: a Gaussian process on the one-hot encoding, expected
                   improvement over latency-feasible candidates
``ofa-evolution``  Once-for-All's evolutionary search (its tutorial's settings), every
                   sample within the latency target
=================  ==============================================================

To add a strategy, write a module with a factory
``make(space, *, seed, multi_objective, **options) -> BaseSampler`` and add one
line to :data:`STRATEGIES`; ``tests/test_strategies.py`` then checks it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from mnas.errors import MnasError

# name -> "module:factory"; modules are imported only when the strategy is used.
STRATEGIES: dict[str, str] = {
    "rl": "mnas.search.strategies.rl:make",
    "evolution": "mnas.search.strategies.evolution:make",
    "tpe": "mnas.search.strategies.builtin:make_tpe",
    "nsga2": "mnas.search.strategies.builtin:make_nsga2",
    "random": "mnas.search.strategies.builtin:make_random",
    "bo": "mnas.search.strategies.bo:make",
    "ofa-evolution": "mnas.search.strategies.ofa_evolution:make",
}


def names() -> list[str]:
    return list(STRATEGIES)


def _loader(name: str):
    if name not in STRATEGIES:
        raise MnasError(f"unknown strategy {name!r} (choose one of {', '.join(STRATEGIES)})")
    module, func = STRATEGIES[name].split(":")
    return getattr(importlib.import_module(module), func)


def options_of(name: str) -> dict[str, Any]:
    """The options a strategy accepts, with their defaults."""
    sig = inspect.signature(_loader(name))
    skip = {"space", "seed", "multi_objective"}
    return {
        k: p.default
        for k, p in sig.parameters.items()
        if k not in skip and p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def get_strategy(
    name: str,
    space: dict,
    *,
    seed: int | None = None,
    multi_objective: bool = False,
    options: dict[str, Any] | None = None,
):
    """Build strategy ``name`` over ``space`` (parameter name -> ``CategoricalDistribution``, in walk order).

    Unknown options raise :class:`MnasError` naming them and the accepted ones.
    """
    factory = _loader(name)
    options = dict(options or {})
    allowed = options_of(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k}={v!r}" for k, v in allowed.items()) or "none"
        raise MnasError(f"strategy {name!r}: unknown option(s) {unknown} (accepted: {listed})")
    return factory(space, seed=seed, multi_objective=multi_objective, **options)
