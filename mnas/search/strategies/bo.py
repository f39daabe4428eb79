"""Bayesian optimisation over the space's one-hot encoding: a Gaussian process, expected improvement.

Each network is its one-hot vector (one block of options per choice). The model is a Gaussian
process on the standardised objective with the kernel

    k(x, x') = a · m / C + (1 − a) · exp(−γ · (C − m)),   m = x · x' (choices on which x and x' agree)

over C choices: an additive part (the linear kernel on one-hot = one effect per option, what
most of the accuracy of a block-wise space is made of) plus an exponential Hamming kernel for
interactions. ``a``, ``γ`` and the noise are chosen by marginal likelihood on a small grid
(re-chosen every ``refit_every`` trials). Past ``max_fit`` trials the model is fitted on the best
half and the newest half of that many (the cost of a proposal then stays flat).

A proposal maximises expected improvement over the best trial among candidates: uniform random
networks, every one-choice neighbour of the best trials and random 2–3-choice mutations of good
ones, then a few steps of hill climbing on the acquisition from the best candidates. Networks
already tried are never proposed again. When the run screens proposals by latency
(``mnas/search/screen.py``), candidates over the target are removed before the acquisition is
maximised, so the model spends no evaluation finding the constraint. The first ``n_startup``
trials are uniform random (feasible ones, under a screen).

State: only the seeded generator and a cache of the kernel's hyperparameters; the model is
refitted from the study's finished trials for every proposal, so a resumed run carries on.
``benchmarks/bench_peers.py`` measures the cost per proposal (target ≤ 50 ms at 2,000 trials).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

from mnas.errors import MnasError
from mnas.search.strategies.base import check_categorical

GRID_A = (0.5, 0.8, 0.95)
GRID_GAMMA = (0.1, 0.3, 1.0)
GRID_NOISE = (0.01, 0.1)


_BLAS: list = []


def _one_blas_thread():
    """The matrices are small (≤ max_fit rows): extra BLAS threads only contend (100x slower on a busy machine)."""
    import contextlib

    if not _BLAS:
        import scipy.linalg  # noqa: F401 - load scipy's own BLAS first, so that the controller limits it too

        try:
            from threadpoolctl import ThreadpoolController  # scikit-learn's dependency

            _BLAS.append(ThreadpoolController())
        except ImportError:  # pragma: no cover
            _BLAS.append(None)
    return _BLAS[0].limit(limits=1, user_api="blas") if _BLAS[0] is not None else contextlib.nullcontext()


def _ei(mu: np.ndarray, sd: np.ndarray, best: float, xi: float) -> np.ndarray:
    from scipy.special import ndtr

    sd = np.maximum(sd, 1e-9)
    z = (mu - best - xi) / sd
    return sd * (z * ndtr(z) + np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))


class BOSampler(BaseSampler):
    """GP + expected improvement over one-hot encodings; see the module docstring."""

    def __init__(self, space: dict, *, seed: int | None, n_startup: int, n_random: int, max_fit: int,
                 refit_every: int, xi: float):
        check_categorical(space, "bo")
        if n_startup < 2:
            raise MnasError(f"strategy 'bo': n_startup must be >= 2, got {n_startup}")
        if n_random < 1 or max_fit < 10 or refit_every < 1:
            raise MnasError(f"strategy 'bo': n_random >= 1, max_fit >= 10 and refit_every >= 1 needed, got "
                            f"{n_random}, {max_fit}, {refit_every}")
        self._space = dict(space)
        self._names = list(space)
        self.sizes = np.array([len(d.choices) for d in space.values()], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.int64)
        self._reprs = [{repr(c): i for i, c in enumerate(d.choices)} for d in space.values()]
        self.n_startup, self.n_random, self.max_fit = n_startup, n_random, max_fit
        self.refit_every, self.xi = refit_every, xi
        self.climb = 4  # hill-climbing steps on the acquisition
        self._rng = np.random.default_rng(seed)
        self._screen = None
        self._hyper: tuple[int, tuple[float, float, float]] | None = None  # (trials when chosen, (a, gamma, noise))
        self._codes: dict[tuple, np.ndarray | None] = {}  # parameter values -> option indices (a memo)
        self._hist: dict | None = None  # the encoded finished trials of the last study seen (a memo)

    # ------------------------------------------------------------------ plumbing

    def set_screen(self, screen) -> None:
        """Called by :class:`mnas.search.screen.ScreenedSampler`: candidates are filtered by its latency target."""
        if list(screen.names) != self._names:
            raise MnasError("strategy 'bo': the screen's choices are not the strategy's")
        self._screen = screen

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()

    def infer_relative_search_space(self, study, trial) -> dict:
        if len(study.directions) != 1:
            raise MnasError("strategy 'bo' needs a single objective: use a scalar reward (soft, hard, v3-small) "
                            "or nsga2/evolution/tpe/random for 'pareto'")
        return dict(self._space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        d = param_distribution
        return d.choices[int(self._rng.integers(len(d.choices)))]

    def _index(self, params: dict) -> np.ndarray | None:
        key = tuple(map(params.get, self._names))
        if key not in self._codes:
            self._codes[key] = self._encode(params)
        return self._codes[key]

    def _encode(self, params: dict) -> np.ndarray | None:
        out = []
        for k, lookup in zip(self._names, self._reprs):
            if k not in params or repr(params[k]) not in lookup:
                return None
            out.append(lookup[repr(params[k])])
        return np.array(out, dtype=np.int64)

    def _onehot(self, idx: np.ndarray) -> np.ndarray:
        x = np.zeros((len(idx), int(self.sizes.sum())))
        x[np.arange(len(idx))[:, None], self.offsets[None, :] + idx] = 1.0
        return x

    def _random(self, n: int) -> np.ndarray:
        return (self._rng.random((n, len(self.sizes))) * self.sizes).astype(np.int64)

    def _params(self, idx) -> dict[str, Any]:
        return {k: self._space[k].choices[int(i)] for k, i in zip(self._names, idx)}

    # ------------------------------------------------------------------ the model

    def _kernel(self, m: np.ndarray, a: float, gamma: float) -> np.ndarray:
        c = len(self.sizes)
        return a * m / c + (1 - a) * np.exp(-gamma * (c - m))

    def _choose(self, m: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
        best, arg = -math.inf, (GRID_A[0], GRID_GAMMA[0], GRID_NOISE[0])
        n = len(y)
        for a in GRID_A:
            for g in GRID_GAMMA:
                k = self._kernel(m, a, g)
                for s2 in GRID_NOISE:
                    try:
                        chol = np.linalg.cholesky(k + s2 * np.eye(n))
                    except np.linalg.LinAlgError:
                        continue
                    alpha = np.linalg.solve(chol, y)
                    ll = -0.5 * float(alpha @ alpha) - float(np.log(np.diag(chol)).sum())
                    if ll > best + 1e-12:
                        best, arg = ll, (a, g, s2)
        return arg

    def sample_relative(self, study, trial, search_space: dict) -> dict[str, Any]:
        if not search_space:
            return {}
        with _one_blas_thread():
            return self._propose(study, search_space)

    def _history(self, study, sign: float) -> tuple[np.ndarray, np.ndarray, set]:
        """(option indices, signed values, encodings seen) of the finished trials, in trial order.

        Finished trials never change, so with an in-memory study (whose ``get_trials(deepcopy=False)``
        hands out the stored objects) only the trials finished since the last call are encoded; any
        other storage, or a different study, is read again from the start.
        """
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        c = self._hist
        if c is None or c["study"] is not study or c["sign"] != sign or len(done) < c["n"] or \
                (c["n"] and done[c["n"] - 1] is not c["last"]):
            c = self._hist = {"study": study, "sign": sign, "n": 0, "last": None, "rows": [], "ys": [], "seen": set()}
        for t in done[c["n"]:]:
            v = t.value
            if v is not None and math.isfinite(v):
                idx = self._index(t.params)
                if idx is not None:
                    c["rows"].append(idx)
                    c["ys"].append(sign * float(v))
                    c["seen"].add(idx.tobytes())
        if len(done) > c["n"]:
            c["n"], c["last"] = len(done), done[-1]
            c["X"] = np.stack(c["rows"]) if c["rows"] else np.zeros((0, len(self.sizes)), dtype=np.int64)
            c["Y"] = np.array(c["ys"])
        if "X" not in c:
            c["X"], c["Y"] = np.zeros((0, len(self.sizes)), dtype=np.int64), np.zeros(0)
        return c["X"], c["Y"], c["seen"]

    def _propose(self, study, search_space: dict) -> dict[str, Any]:
        from scipy.linalg import solve_triangular
        from scipy.linalg.lapack import dtrtri

        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        idx_all, y_all, seen = self._history(study, sign)
        seen = set(seen)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            idx = self._index(t.params)
            if idx is not None:
                seen.add(idx.tobytes())  # running elsewhere: not proposed twice
        if len(y_all) < self.n_startup:
            return self._startup(seen)
        n = len(y_all)
        if n > self.max_fit:  # the best half and the newest half
            half = self.max_fit // 2
            keep = set(np.argsort(-y_all, kind="stable")[:half].tolist()) | set(range(n - (self.max_fit - half), n))
            sel = np.array(sorted(keep))
        else:
            sel = np.arange(n)
        xi_, yi = idx_all[sel], y_all[sel]
        mu0, sd0 = float(yi.mean()), float(yi.std()) or 1.0
        z = (yi - mu0) / sd0
        x = self._onehot(xi_)
        m = x @ x.T
        if self._hyper is None or n - self._hyper[0] >= self.refit_every or n < self._hyper[0]:
            self._hyper = (n, self._choose(m, z))
        a, g, s2 = self._hyper[1]
        chol = np.linalg.cholesky(self._kernel(m, a, g) + s2 * np.eye(len(z)))
        alpha = solve_triangular(chol.T, solve_triangular(chol, z, lower=True), lower=False)
        best = float(z.max())

        chol_inv, info = dtrtri(chol, lower=1)
        if info != 0:  # pragma: no cover - a Cholesky factor with noise on its diagonal is invertible
            chol_inv = solve_triangular(chol, np.eye(len(z)), lower=True)

        def acquisition(cand: np.ndarray) -> np.ndarray:
            kc = self._kernel(self._onehot(cand) @ x.T, a, g)
            mu = kc @ alpha
            v = kc @ chol_inv.T
            sd = np.sqrt(np.maximum(1.0 - (v * v).sum(1), 1e-12))
            return _ei(mu, sd, best, self.xi)

        cand = self._candidates(idx_all, y_all, seen)
        if not len(cand):
            return self._startup(seen)
        score = acquisition(cand)
        # hill climbing on the acquisition: the best candidate so far moves to its best one-choice neighbour
        i = int(np.argmax(score))
        top_c, top_s = cand[i], float(score[i])
        for _ in range(self.climb):
            nb = self._filter(self._neighbours(top_c[None]), seen)
            if not len(nb):
                break
            s = acquisition(nb)
            j = int(np.argmax(s))
            if s[j] <= top_s:
                break
            top_c, top_s = nb[j], float(s[j])
        return {k: v for k, v in self._params(top_c).items() if k in search_space}

    # ------------------------------------------------------------------ candidates

    def _neighbours(self, idx: np.ndarray) -> np.ndarray:
        out = []
        for j, k in enumerate(self.sizes):
            for o in range(int(k)):
                r = idx.copy()
                keep = r[:, j] != o
                r[:, j] = o
                out.append(r[keep])
        return np.concatenate(out) if out else idx[:0]

    def _filter(self, cand: np.ndarray, seen: set) -> np.ndarray:
        """Distinct candidates, not tried yet, within the latency target when screened."""
        if not len(cand):
            return cand
        cand = np.unique(cand, axis=0)
        fresh = np.array([r.tobytes() not in seen for r in cand], dtype=bool)
        cand = cand[fresh]
        if self._screen is not None and len(cand):
            cand = cand[self._screen.latency_indices(cand) <= self._screen.target_ms]
        return cand

    def _candidates(self, idx: np.ndarray, y: np.ndarray, seen: set) -> np.ndarray:
        order = np.argsort(-y, kind="stable")
        parts = [self._random(self.n_random), self._neighbours(idx[order[:5]])]
        good = idx[order[:20]]
        mut = good[self._rng.integers(len(good), size=self.n_random // 2)].copy()
        for _ in range(3):  # 1-3 random changes each (a change may keep the option: then fewer)
            col = self._rng.integers(len(self.sizes), size=len(mut))
            val = (self._rng.random(len(mut)) * self.sizes[col]).astype(np.int64)
            on = self._rng.random(len(mut)) < 0.67
            mut[on, col[on]] = val[on]
        parts.append(mut)
        return self._filter(np.concatenate(parts), seen)

    def _startup(self, seen: set) -> dict[str, Any]:
        """A uniform random network (feasible under a screen), not tried yet where one is found."""
        cand = self._random(64)
        ok = self._filter(cand, seen)
        row = ok[0] if len(ok) else cand[0]  # none feasible among 64: the screen resamples or repairs
        return self._params(row)


def make(
    space: dict,
    *,
    seed: int | None = None,
    multi_objective: bool = False,
    n_startup: int = 10,
    n_random: int = 300,
    max_fit: int = 160,
    refit_every: int = 10,
    xi: float = 0.01,
):
    """Gaussian-process Bayesian optimisation with expected improvement over one-hot encodings."""
    if multi_objective:
        raise MnasError("strategy 'bo' needs a single objective: use a scalar reward (soft, hard, v3-small) "
                        "or nsga2/evolution/tpe/random for 'pareto'")
    return BOSampler(space, seed=seed, n_startup=n_startup, n_random=n_random, max_fit=max_fit,
                     refit_every=refit_every, xi=xi)
