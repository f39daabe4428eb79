"""Optuna's own samplers (TPE, NSGA-II, random), with mnas's defaults and option checks."""

from __future__ import annotations

from mnas.errors import MnasError


def make_random(space: dict, *, seed: int | None = None, multi_objective: bool = False):
    """Uniform random sampling: the baseline every strategy is compared with."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def make_tpe(
    space: dict,
    *,
    seed: int | None = None,
    multi_objective: bool = False,
    n_startup_trials: int = 10,
    n_ei_candidates: int = 24,
    multivariate: bool = True,
    constant_liar: bool = True,
):
    """Tree-structured Parzen Estimator; multivariate (joint over the choices) by default."""
    import warnings

    import optuna

    if n_startup_trials < 1:
        raise MnasError(f"strategy 'tpe': n_startup_trials must be >= 1, got {n_startup_trials}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=n_startup_trials,
            n_ei_candidates=n_ei_candidates,
            multivariate=multivariate,
            constant_liar=constant_liar,
        )


def make_nsga2(
    space: dict,
    *,
    seed: int | None = None,
    multi_objective: bool = False,
    population_size: int = 50,
    mutation_prob: float | None = None,
    crossover_prob: float = 0.9,
    swapping_prob: float = 0.5,
):
    """NSGA-II (Deb et al. 2002): non-dominated sorting and crowding distance; uniform crossover."""
    import optuna

    if population_size < 2:
        raise MnasError(f"strategy 'nsga2': population_size must be >= 2, got {population_size}")
    return optuna.samplers.NSGAIISampler(
        seed=seed,
        population_size=population_size,
        mutation_prob=mutation_prob,
        crossover_prob=crossover_prob,
        swapping_prob=swapping_prob,
    )
