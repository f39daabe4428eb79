"""Regularised (aging) evolution, Real et al., "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019, as an Optuna sampler.

The population is the ``population_size`` most recent finished trials (trial
number order), so every model ages out after ``population_size`` newer ones,
however good it was. A new trial copies the winner of a tournament among
``sample_size`` members drawn at random from the population and mutates it:
with ``mutation_prob`` None (the paper's mutation), ONE choice moves to a
different option; with a probability p, each choice is redrawn uniformly with
probability p (NNI's ``RegularizedEvolution``), again until something changed.
With ``dedup`` a child equal to a network already in the study (finished or
running) is thrown away and bred again (up to 100 times, then a random network
not tried yet). Until the population is full, trials are drawn uniformly at
random. In a multi-objective study the tournament winner is the member with
the best non-dominated rank among the drawn ones.

Defaults: population 50, tournaments of 12, each choice redrawn with
probability 0.05 (NNI's mutation), dedup. They were chosen on the anb benchmark
(``benchmarks/results/peers_anb.md``: pixel1 <= 82.3 ms, hard reward, 5 seeds)
among NNI's ``RegularizedEvolution`` defaults (``nni/nas/strategy/evolution.py``:
population_size=100, sample_size=25, mutation_prob=0.05, dedup=True), mnas's
former 20 / 5 one-choice without dedup, and 20 / 5, 30 / 8, 50 / 12 with dedup
and one-choice mutation: 50 / 12 (NNI's tournament-to-population ratio, half its
population) with NNI's mutation reached the milestone in fewer samples than
NNI's settings and ended best at 2,000 samples; one-choice mutation was faster
to the milestone but ended lower.

The state (the population) lives in the study's storage; the sampler holds
only its seeded random generator (and a memo of the networks tried), so a
resumed run carries on from the stored trials.
"""

from __future__ import annotations

import random
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import TrialState

from mnas.errors import MnasError
from mnas.search.strategies.base import check_categorical

DEDUP_TRIES = 100


def _dominates(a, b, signs) -> bool:
    better_or_equal = all(s * x >= s * y for x, y, s in zip(a, b, signs))
    strictly = any(s * x > s * y for x, y, s in zip(a, b, signs))
    return better_or_equal and strictly


def pareto_ranks(values: list, signs: list[int]) -> list[int]:
    """Non-dominated rank (0 = on the front) of each value vector; ``signs`` +1 maximise, −1 minimise."""
    n = len(values)
    ranks = [-1] * n
    remaining = set(range(n))
    r = 0
    while remaining:
        front = {i for i in remaining if not any(_dominates(values[j], values[i], signs) for j in remaining if j != i)}
        for i in front:
            ranks[i] = r
        remaining -= front
        r += 1
    return ranks


class EvolutionSampler(BaseSampler):
    """Aging evolution over a categorical space; see the module docstring."""

    def __init__(self, space: dict, *, population_size: int, sample_size: int, seed: int | None,
                 mutation_prob: float | None = None, dedup: bool = False):
        check_categorical(space, "evolution")
        if mutation_prob is not None and not 0.0 < mutation_prob <= 1.0:
            raise MnasError(f"strategy 'evolution': mutation_prob must be in (0, 1] or None (one choice), got {mutation_prob}")
        if population_size < 2:
            raise MnasError(f"strategy 'evolution': population_size must be >= 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise MnasError(
                f"strategy 'evolution': sample_size must be in [1, population_size={population_size}], got {sample_size}"
            )
        self._space = dict(space)
        self.population_size = population_size
        self.sample_size = sample_size
        self.mutation_prob = mutation_prob
        self.dedup = bool(dedup)
        self._seen: dict = {"study": None, "n": 0, "last": None, "keys": set()}
        self._rng = random.Random(seed)
        self._random = optuna.samplers.RandomSampler(seed=self._rng.randrange(2**31))

    def reseed_rng(self) -> None:
        self._rng = random.Random()
        self._random.reseed_rng()

    def infer_relative_search_space(self, study, trial) -> dict:
        return dict(self._space)

    def _random_sample(self, space: dict) -> dict[str, Any]:
        return {k: self._rng.choice(d.choices) for k, d in space.items()}

    def sample_relative(self, study, trial, search_space: dict) -> dict[str, Any]:
        if not search_space:
            return {}
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        # the newest population_size trials that set every choice, scanned from the end (Optuna's storages list
        # trials in creation order), so a sample costs O(population) however long the search
        population = []
        keys = search_space.keys()
        for t in reversed(done):
            if t.params.keys() >= keys:
                population.append(t)
                if len(population) == self.population_size:
                    break
        population.sort(key=lambda t: t.number)
        tried = self._tried(study, search_space) if self.dedup else set()
        if len(population) < self.population_size:
            return self._fresh(search_space, tried)
        signs = [1 if d == StudyDirection.MAXIMIZE else -1 for d in study.directions]
        mutable = [k for k, d in search_space.items() if len(d.choices) > 1]
        for _ in range(DEDUP_TRIES if self.dedup else 1):
            child = self._mutate(self._tournament(population, signs), search_space, mutable)
            if not self.dedup or self._key(child, search_space) not in tried:
                return child
        return self._fresh(search_space, tried)  # the neighbourhood is used up: a random network

    def _fresh(self, search_space: dict, tried: set) -> dict[str, Any]:
        """A uniform random network, one not tried yet where DEDUP_TRIES draws find one."""
        child = self._random_sample(search_space)
        for _ in range(DEDUP_TRIES - 1):
            if not tried or self._key(child, search_space) not in tried:
                break
            child = self._random_sample(search_space)
        return child

    def _tournament(self, population: list, signs: list[int]):
        picked = self._rng.sample(population, self.sample_size)
        if len(signs) == 1:
            return max(picked, key=lambda t: signs[0] * t.values[0])  # first of equals wins
        ranks = pareto_ranks([t.values for t in picked], signs)
        return picked[min(range(len(picked)), key=lambda i: ranks[i])]

    def _mutate(self, parent, search_space: dict, mutable: list[str]) -> dict[str, Any]:
        child = {k: parent.params[k] for k in search_space}
        if not mutable:
            return child
        if self.mutation_prob is None:
            name = self._rng.choice(mutable)
            others = [c for c in search_space[name].choices if repr(c) != repr(child[name])]
            child[name] = self._rng.choice(others)
            return child
        while True:  # each choice redrawn with probability mutation_prob, until one differs
            changed = False
            for k in mutable:
                if self._rng.random() < self.mutation_prob:
                    new = self._rng.choice(search_space[k].choices)
                    changed = changed or repr(new) != repr(child[k])
                    child[k] = new
            if changed:
                return child

    @staticmethod
    def _key(params: dict, search_space: dict) -> tuple:
        return tuple(repr(params.get(k)) for k in search_space)

    def _tried(self, study, search_space: dict) -> set:
        """The networks in the study (any state); finished trials are memoised (they never change)."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        c = self._seen
        if c["study"] is not study or len(done) < c["n"] or (c["n"] and done[c["n"] - 1] is not c["last"]):
            c = self._seen = {"study": study, "n": 0, "last": None, "keys": set()}
        for t in done[c["n"]:]:
            c["keys"].add(self._key(t.params, search_space))
        if done:
            c["n"], c["last"] = len(done), done[-1]
        keys = set(c["keys"])
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            keys.add(self._key(t.params, search_space))
        return keys

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def make(
    space: dict,
    *,
    seed: int | None = None,
    multi_objective: bool = False,
    population_size: int = 50,
    sample_size: int = 12,
    mutation_prob: float | None = 0.05,
    dedup: bool = True,
):
    """Aging evolution: ``population_size`` population, ``sample_size``-way tournaments, one-choice mutation
    (``mutation_prob`` None) or per-choice redraws with that probability, ``dedup``: never a network twice."""
    return EvolutionSampler(space, population_size=population_size, sample_size=sample_size, seed=seed,
                            mutation_prob=mutation_prob, dedup=dedup)
