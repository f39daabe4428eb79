"""Latency screening: proposals over the target are rejected before their accuracy is measured.

A latency is a table lookup (microseconds); an accuracy is a proxy training. Under a
hard constraint (the ``hard`` reward: no gain below the target, a steep penalty above) a
network over the target is worthless, so measuring its accuracy wastes the budget. The
screen wraps any strategy's sampler (:class:`ScreenedSampler`): each proposal is priced by
the latency model first; one over the target is discarded and the strategy is asked
again, up to ``tries`` times; after that the last proposal is *repaired* (greedily, the
one choice change that lowers latency most, until it fits), so an unlucky strategy never
hangs and a target no network reaches is a one-line error naming the fastest network.

The budget (``--trials``) counts accuracy evaluations: screened proposals are not trials.
They are not told to the study either (no fake accuracy, no extra rows, trial numbers
stay the count of evaluations, so same-seed-same-trials and resume are unchanged); each
trial records in its row how many proposals were screened out before it (``screened``).
A strategy that can use the constraint itself (``bo`` restricts its acquisition to
feasible candidates) receives the screen through ``set_screen``, so what it learns
from the latency model costs no evaluation.

Default (``screen: null`` in the config): on for a single-objective reward that gives
nothing for being under the target and at least halves the reward 2x over it, i.e. the
``hard`` preset (α = 0, β ≤ −1); off otherwise (``soft`` and ``v3-small`` rank networks
over the target, ``pareto`` has no target), where screening would change the search.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from optuna.samplers import BaseSampler

from mnas.errors import MnasError
from mnas.search.strategies.base import distributions, sample_from_params, to_param

TRIES = 100  # proposals per trial before the last one is repaired


def screen_default(reward) -> bool:
    """Whether screening is on by default for ``reward``: a hard constraint (α = 0, β ≤ −1)."""
    if reward.multi_objective or reward.target_ms is None or reward.alpha is None or reward.beta is None:
        return False
    return reward.alpha == 0 and reward.beta <= -1


def screen_enabled(option: bool | None, reward) -> bool:
    """``option`` (True/False), or the default for ``reward`` when None; True without a target is an error."""
    if option is None:
        return screen_default(reward)
    if option and (reward.target_ms is None or reward.multi_objective):
        raise MnasError("screen: needs a latency target and a scalar reward (--target-ms with soft, hard, v3-small "
                        "or custom); turn it off with --no-screen")
    return bool(option)


class Screen:
    """Prices trial parameters with a latency model and repairs those over ``target_ms``.

    Uses the predictor's vectorised path for the space (``compile_space``) where it has one,
    else decodes each sample and calls ``predict_many``.
    """

    def __init__(self, space, predictor, target_ms: float, tries: int = TRIES):
        if tries < 1:
            raise MnasError(f"screen_tries must be >= 1, got {tries}")
        self.space, self.predictor = space, predictor
        self.target_ms = float(target_ms)
        self.tries = int(tries)
        self.choices = list(space.choices())
        self.names = [c.name for c in self.choices]
        self.dists = distributions(self.choices)
        self._index = [{repr(to_param(o)): i for i, o in enumerate(c.options)} for c in self.choices]
        self.sizes = [len(c.options) for c in self.choices]
        self._fast = None
        compile_space = getattr(predictor, "compile_space", None)
        if compile_space is not None:
            try:
                self._fast = compile_space(space)
            except Exception:  # noqa: BLE001 - only a speed-up: a model that cannot vectorise this space decodes
                self._fast = None
        self._memo: dict[bytes, float] = {}
        self.proposals = 0  # priced proposals (statistics only)
        self.rejected = 0

    # ------------------------------------------------------------------ pricing

    def indices(self, params: dict) -> np.ndarray:
        """Option index per choice (walk order) of one trial's parameters."""
        return np.array([self._index[j][repr(params[n])] for j, n in enumerate(self.names)], dtype=np.int64)

    def params_of(self, idx) -> dict:
        return {n: self.dists[n].choices[int(i)] for n, i in zip(self.names, idx)}

    def latency_indices(self, idx: np.ndarray) -> np.ndarray:
        """Predicted ms of each row of an option-index matrix."""
        idx = np.atleast_2d(np.asarray(idx, dtype=np.int64))
        if self._fast is not None:
            return np.asarray(self._fast.predict_indices(idx), dtype=float)
        out = np.empty(len(idx))
        todo = []
        for i, row in enumerate(idx):
            k = row.tobytes()
            if k in self._memo:
                out[i] = self._memo[k]
            else:
                todo.append(i)
        if todo:
            nets = [self.space.decode(sample_from_params(self.choices, self.params_of(idx[i]))) for i in todo]
            ms = np.asarray(self.predictor.predict_many(nets), dtype=float)
            for i, v in zip(todo, ms):
                out[i] = self._memo[idx[i].tobytes()] = float(v)
        return out

    def latency(self, params: dict) -> float:
        return float(self.latency_indices(self.indices(params)[None])[0])

    def feasible(self, params: dict) -> bool:
        return self.latency(params) <= self.target_ms

    # ------------------------------------------------------------------ repair

    def repair(self, params: dict) -> dict:
        """``params`` changed greedily (each step: the single choice change that lowers latency most) until
        within the target; :class:`MnasError` if a local minimum over the target is reached."""
        cur = self.indices(params)
        ms = float(self.latency_indices(cur[None])[0])
        for _ in range(sum(self.sizes)):
            if ms <= self.target_ms:
                return self.params_of(cur)
            nbrs = []
            for j, k in enumerate(self.sizes):
                for o in range(k):
                    if o != cur[j]:
                        row = cur.copy()
                        row[j] = o
                        nbrs.append(row)
            if not nbrs:
                break
            nb = np.stack(nbrs)
            lat = self.latency_indices(nb)
            i = int(np.argmin(lat))
            if lat[i] >= ms - 1e-12:
                break
            cur, ms = nb[i], float(lat[i])
        if ms <= self.target_ms:
            return self.params_of(cur)
        raise MnasError(f"screen: no network within {self.target_ms:g} ms found after {self.tries} proposals and a "
                        f"greedy repair (reached {ms:.2f} ms): raise --target-ms, or search without --screen")


class ScreenedSampler(BaseSampler):
    """``base`` with every proposal checked against the latency target first; see the module docstring.

    The wrapper asks ``base`` for all parameters at once (its relative sample, completed by its
    independent sampling), so strategies that sample choice by choice are screened too. ``screened``
    maps a trial number to how many of its proposals were rejected (read by the runner, then dropped).
    """

    def __init__(self, base: BaseSampler, screen: Screen):
        self.base = base
        self.screen = screen
        self.screened: dict[int, int] = {}
        self.repaired: set[int] = set()
        hook: Callable[[Screen], Any] | None = getattr(base, "set_screen", None)
        if hook is not None:
            hook(screen)

    def __getattr__(self, name: str):  # the base sampler's own attributes (e.g. rl's ``updates``)
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict:
        inner = self.base.infer_relative_search_space(study, trial)  # lets the base refuse (e.g. multi-objective)
        return {**self.screen.dists, **inner} if inner is not None else dict(self.screen.dists)

    def sample_relative(self, study, trial, search_space: dict) -> dict[str, Any]:
        if not search_space:
            return {}
        inner = self.base.infer_relative_search_space(study, trial)
        params: dict[str, Any] = {}
        rejected = 0
        for _ in range(self.screen.tries):
            rel = self.base.sample_relative(study, trial, inner) if inner else {}
            params = {k: rel[k] if k in rel else self.base.sample_independent(study, trial, k, d)
                      for k, d in search_space.items()}
            self.screen.proposals += 1
            if self.screen.feasible(params):
                break
            rejected += 1
            self.screen.rejected += 1
        else:
            params = {**params, **self.screen.repair(params)}
            self.repaired.add(trial.number)
        self.screened[trial.number] = rejected
        return params

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.base.after_trial(study, trial, state, values)
