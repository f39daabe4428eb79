"""Regularised (aging) evolution, Real et al., "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019, as an Optuna sampler.

The population is the ``population_size`` most recent finished trials (trial
number order), so every model ages out after ``population_size`` newer ones,
however good it was. A new trial copies the winner of a tournament among
``sample_size`` members drawn at random from the population and mutates ONE
choice to a different option. Until the population is full, trials are drawn
uniformly at random. In a multi-objective study the tournament winner is the
member with the best non-dominated rank among the drawn ones.

The state (the population) lives in the study's storage; the sampler holds
only its seeded random generator, so a resumed run carries on from the stored
trials.
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

    def __init__(self, space: dict, *, population_size: int, sample_size: int, seed: int | None):
        check_categorical(space, "evolution")
        if population_size < 2:
            raise MnasError(f"strategy 'evolution': population_size must be >= 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise MnasError(
                f"strategy 'evolution': sample_size must be in [1, population_size={population_size}], got {sample_size}"
            )
        self._space = dict(space)
        self.population_size = population_size
        self.sample_size = sample_size
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
        for t in reversed(done):
            if all(k in t.params for k in search_space):
                population.append(t)
                if len(population) == self.population_size:
                    break
        population.sort(key=lambda t: t.number)
        if len(population) < self.population_size:
            return self._random_sample(search_space)
        picked = self._rng.sample(population, self.sample_size)
        signs = [1 if d == StudyDirection.MAXIMIZE else -1 for d in study.directions]
        if len(signs) == 1:
            parent = max(picked, key=lambda t: signs[0] * t.values[0])  # first of equals wins
        else:
            ranks = pareto_ranks([t.values for t in picked], signs)
            parent = picked[min(range(len(picked)), key=lambda i: ranks[i])]
        child = {k: parent.params[k] for k in search_space}
        mutable = [k for k, d in search_space.items() if len(d.choices) > 1]
        if mutable:
            name = self._rng.choice(mutable)
            others = [c for c in search_space[name].choices if repr(c) != repr(child[name])]
            child[name] = self._rng.choice(others)
        return child

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._random.sample_independent(study, trial, param_name, param_distribution)


def make(
    space: dict,
    *,
    seed: int | None = None,
    multi_objective: bool = False,
    population_size: int = 20,
    sample_size: int = 5,
):
    """Aging evolution with a ``population_size`` population and ``sample_size``-way tournaments."""
    return EvolutionSampler(space, population_size=population_size, sample_size=sample_size, seed=seed)
