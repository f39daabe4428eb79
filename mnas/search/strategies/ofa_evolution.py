"""Once-for-All's evolutionary search (Cai et al., "Once-for-All: Train One Network and Specialize it
for Efficient Deployment", ICLR 2020) as an Optuna sampler.

Reimplemented from OFA's code (repository ``mit-han-lab/once-for-all``, MIT): the tutorial's
``tutorial/evolution_finder.py`` and the library's ``ofa/nas/search_algorithm/evolution.py``
(``EvolutionFinder``), with the settings of the tutorial notebook ``tutorial/ofa.ipynb``
(section 3.1, Note10 at ≤ 25 ms: ``P = 100``, ``N = 500``, ``r = 0.25``, ``'mutate_prob': 0.1``,
``'mutation_ratio': 0.5``; it reports 81.71 % predicted accuracy at 24.73 ms, r192):

- **population** ``population_size`` (P = 100) random networks that meet the constraint;
- then each **generation** (OFA's ``max_time_budget`` = 500 of them; here the run's trial budget
  decides, P + 500 × P = 50,100 for the tutorial's run) keeps as parents the best
  ``parent_ratio`` × P (25) networks found so far, and makes P children:
  ``mutation_ratio`` × P (50) by **mutation** of a random parent (each gene re-drawn
  uniformly, the current option included, with probability ``mutate_prob`` = 0.1; a gene is a
  block's kernel *and* expansion together, a stage's depth, or the resolution, whose probability is
  ``resolution_mutate_prob``, 0.1 in the tutorial, 0.5 in the library) and the rest by
  **crossover** of two random parents (every choice taken from either parent with probability ½);
- every sample meets the constraint: OFA redraws ``while True`` until it does; here the
  draws are bounded (``max_tries``), see below.

Parents are "the best so far" exactly as in OFA: its population after a generation is the
parents plus their children, and the next parents are the best ``parent_ratio`` × P of it, which
by induction are the best of every network evaluated before that generation. So the state is a
function of the study's finished trials (trial ``n`` belongs to generation
``(n - P) // P``); a resumed run carries on. Two of OFA's slips are not copied: the tutorial keeps
only the first ``mutation_ratio`` × P of its random population as the first parents' pool (the
library, the intent, keeps all P), and its reported best is that of the parents, so the last
generation's children are never looked at; here every trial counts.

**The constraint** comes from the search's latency screen (:mod:`mnas.search.screen`, on by
default for the ``hard`` reward): it hands the sampler its :class:`~mnas.search.screen.Screen`
through :meth:`OfaEvolutionSampler.set_screen`. Candidates are priced in small batches through
the screen's vectorised latency path. A random sample that is still over the target after
``max_tries`` draws is repaired by the screen (greedily made faster), which raises a one-line
:class:`~mnas.errors.MnasError` when even that cannot meet the target; a mutation or crossover
that cannot meet it in ``max_tries`` draws returns a copy of its (feasible) first parent. Without
a screen (no target, or ``--no-screen``) every candidate is accepted and the study's objective
(the reward) ranks them.

Single objective only. Choice names group into OFA's genes by their layer position
(``s3.l2.kernel`` and ``s3.l2.expand`` form one gene); any other choice is a gene of its own.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import optuna
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

from mnas.errors import MnasError
from mnas.search.strategies.base import check_categorical

NAME = "ofa-evolution"
BATCH = 16  # candidates priced per latency call while looking for a feasible one
_LAYER = re.compile(r"^(.+\.l\d+)\.[^.]+$")  # s3.l2.kernel -> s3.l2


def genes(names: list[str]) -> list[list[int]]:
    """Choice indices grouped into OFA's genes: one per layer position (its kernel and expansion), else one each."""
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        m = _LAYER.match(n)
        groups.setdefault(m.group(1) if m else n, []).append(i)
    return list(groups.values())


class OfaEvolutionSampler(BaseSampler):
    """OFA's evolutionary search over a categorical space; see the module docstring."""

    def __init__(self, space: dict, *, population_size: int, parent_ratio: float, mutation_ratio: float,
                 mutate_prob: float, resolution_mutate_prob: float, max_tries: int, seed: int | None):
        check_categorical(space, NAME)
        if population_size < 2:
            raise MnasError(f"strategy {NAME!r}: population_size must be >= 2, got {population_size}")
        for k, v in (("parent_ratio", parent_ratio), ("mutation_ratio", mutation_ratio),
                     ("mutate_prob", mutate_prob), ("resolution_mutate_prob", resolution_mutate_prob)):
            if not 0 <= v <= 1:
                raise MnasError(f"strategy {NAME!r}: {k} must be in [0, 1], got {v}")
        self.parents_size = int(round(parent_ratio * population_size))
        if self.parents_size < 1:
            raise MnasError(f"strategy {NAME!r}: parent_ratio {parent_ratio} x population_size {population_size} "
                            "keeps no parent (needs >= 1)")
        if max_tries < 1:
            raise MnasError(f"strategy {NAME!r}: max_tries must be >= 1, got {max_tries}")
        self._space = dict(space)
        self.names = list(self._space)
        self.sizes = np.array([len(d.choices) for d in self._space.values()], dtype=np.int64)
        self.population_size = population_size
        self.mutation_numbers = int(round(mutation_ratio * population_size))
        self.mutate_prob, self.resolution_mutate_prob, self.max_tries = mutate_prob, resolution_mutate_prob, max_tries
        self._genes = genes(self.names)
        self._gene_prob = np.array([resolution_mutate_prob if self.names[g[0]] == "resolution" else mutate_prob
                                    for g in self._genes])
        self._gene_of = np.zeros(len(self.names), dtype=np.int64)  # choice -> its gene
        for gi, g in enumerate(self._genes):
            self._gene_of[g] = gi
        self._lookup = [{repr(c): i for i, c in enumerate(d.choices)} for d in self._space.values()]
        self._rng = np.random.default_rng(seed)
        self._random = optuna.samplers.RandomSampler(seed=int(self._rng.integers(2**31)))
        self._screen: Any = None
        self._perm: np.ndarray | None = None  # our choice order -> the screen's
        self._parents: tuple[int, np.ndarray] | None = None  # (generation start, parents' index rows), once final
        self._pool: tuple[int, list] | None = None  # (generation start, its parents as trials), once final

    # ------------------------------------------------------------------ the constraint

    def set_screen(self, screen) -> None:
        """Receive the search's latency screen (``mnas.search.screen``): from now on every sample meets it."""
        missing = [n for n in self.names if n not in screen.names]
        if missing:
            raise MnasError(f"strategy {NAME!r}: the latency screen does not price choice(s) {missing}")
        self._screen = screen
        self._perm = np.array([self.names.index(n) for n in screen.names], dtype=np.int64)

    def _feasible_first(self, rows: np.ndarray) -> int | None:
        """Index of the first row within the target (0 without a screen), or None."""
        if self._screen is None:
            return 0
        assert self._perm is not None
        ms = self._screen.latency_indices(rows[:, self._perm])
        ok = np.flatnonzero(ms <= self._screen.target_ms)
        return int(ok[0]) if len(ok) else None

    def _first_feasible(self, draw, fallback) -> np.ndarray:
        """Rows from ``draw(n)`` in batches until one is feasible (at most ``max_tries``), else ``fallback(last)``."""
        tried = 0
        last = None
        while tried < self.max_tries:
            rows = draw(min(BATCH, self.max_tries - tried))
            i = self._feasible_first(rows)
            if i is not None:
                return rows[i]
            tried += len(rows)
            last = rows[-1]
        return fallback(last)

    # ------------------------------------------------------------------ OFA's operators

    def _random_rows(self, n: int) -> np.ndarray:
        return (self._rng.random((n, len(self.sizes))) * self.sizes).astype(np.int64)

    def _mutants(self, parent: np.ndarray, n: int) -> np.ndarray:
        redraw = self._rng.random((n, len(self._genes))) < self._gene_prob  # per gene, one coin (OFA: ks and e)
        new = self._random_rows(n)
        return np.where(redraw[:, self._gene_of], new, parent[None, :])

    def _crosses(self, a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
        take_b = self._rng.random((n, len(self.sizes))) < 0.5  # every choice from either parent
        return np.where(take_b, b[None, :], a[None, :])

    def _repair(self, row: np.ndarray) -> np.ndarray:
        params = self._screen.repair(self._params(row))  # raises MnasError when no network meets the target
        return self._row(params)

    # ------------------------------------------------------------------ study bookkeeping

    def _row(self, params: dict) -> np.ndarray:
        return np.array([self._lookup[j][repr(params[n])] for j, n in enumerate(self.names)], dtype=np.int64)

    def _params(self, row: np.ndarray) -> dict[str, Any]:
        return {n: self._space[n].choices[int(i)] for n, i in zip(self.names, row)}

    def _parents_for(self, study, start: int) -> np.ndarray | None:
        """Index rows of the best ``parents_size`` finished trials numbered below ``start`` (None: none yet).

        The best of everything before a generation is the best of the previous generation's parents and
        that generation's trials, so once a generation's parents are final (every earlier trial finished)
        the next one ranks only the newest generation's trials beside them (not all 50,000 of a long run).
        """
        if self._parents is not None and self._parents[0] == start:
            return self._parents[1]
        lo, pool = 0, []
        if self._pool is not None and self._pool[0] <= start:
            lo, pool = self._pool
        new = [t for t in study.get_trials(deepcopy=False) if lo <= t.number < start]
        done = [t for t in new if t.state == TrialState.COMPLETE and all(n in t.params for n in self.names)]
        sign = -1.0 if study.direction == StudyDirection.MINIMIZE else 1.0
        best = sorted(pool + done, key=lambda t: (-sign * t.values[0], t.number))[: self.parents_size]
        if not best:
            return None
        rows = np.stack([self._row(t.params) for t in best])
        if len(done) == start - lo:  # every earlier trial is in: these parents are final for this generation
            self._parents, self._pool = (start, rows), (start, best)
        return rows

    # ------------------------------------------------------------------ Optuna's sampler interface

    def reseed_rng(self) -> None:
        self._rng = np.random.default_rng()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict:
        return dict(self._space)

    def sample_relative(self, study, trial, search_space: dict) -> dict[str, Any]:
        if not search_space:
            return {}
        n, p = trial.number, self.population_size
        parents = self._parents_for(study, p + (n - p) // p * p) if n >= p else None
        if parents is None:  # the first population (or nothing finished yet): random networks that fit
            row = self._first_feasible(self._random_rows, self._repair)
        else:
            a = parents[int(self._rng.integers(len(parents)))]
            if (n - p) % p < self.mutation_numbers:
                row = self._first_feasible(lambda k: self._mutants(a, k), lambda _: a.copy())
            else:
                b = parents[int(self._rng.integers(len(parents)))]
                row = self._first_feasible(lambda k: self._crosses(a, b, k), lambda _: a.copy())
        params = self._params(row)
        return {k: params[k] for k in search_space if k in params}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def make(
    space: dict,
    *,
    seed: int | None = None,
    multi_objective: bool = False,
    population_size: int = 100,
    parent_ratio: float = 0.25,
    mutation_ratio: float = 0.5,
    mutate_prob: float = 0.1,
    resolution_mutate_prob: float = 0.1,
    max_tries: int = 1000,
):
    """OFA's evolutionary search with its tutorial's settings (population 100, parents 25 %, half the
    children by mutation at probability 0.1, half by crossover); every sample within the latency target."""
    if multi_objective:
        raise MnasError(f"strategy {NAME!r} is single objective (OFA's search maximises accuracy under a latency "
                        "constraint): use --reward hard with --target-ms, or evolution/nsga2 for a Pareto search")
    return OfaEvolutionSampler(space, population_size=population_size, parent_ratio=parent_ratio,
                               mutation_ratio=mutation_ratio, mutate_prob=mutate_prob,
                               resolution_mutate_prob=resolution_mutate_prob, max_tries=max_tries, seed=seed)
