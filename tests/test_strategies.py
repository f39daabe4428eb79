"""One contract for every registered search strategy (ask/tell, valid choices, seeded determinism, options).

The tests run over whatever ``STRATEGIES`` lists: a new strategy is checked by adding its line there.
"""

import inspect
import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution

from mnas.errors import MnasError
from mnas.search.strategies import STRATEGIES, get_strategy, names, options_of

optuna.logging.set_verbosity(optuna.logging.ERROR)

SPACE = {
    "s1.kernel": CategoricalDistribution((3, 5, 7)),
    "s1.act": CategoricalDistribution(("re", "hs")),
    "s1.se": CategoricalDistribution((False, True)),
    "s2.width": CategoricalDistribution((0.75, 1.0, 1.25)),
    "s2.depth": CategoricalDistribution((-1, 0, 1)),
}
SINGLE = names()


def objective(p: dict) -> float:
    """Deterministic, with a unique best: kernel 7, hs, se, width 1.25, depth 1."""
    return (p["s1.kernel"] / 7 + (p["s1.act"] == "hs") + p["s1.se"] + p["s2.width"] + 0.3 * p["s2.depth"]) / 4.55


def run(name, seed, n=40, multi=False, **options):
    sampler = get_strategy(name, SPACE, seed=seed, multi_objective=multi, options=options)
    study = optuna.create_study(directions=["maximize", "minimize"] if multi else ["maximize"], sampler=sampler)
    for _ in range(n):
        t = study.ask(SPACE)
        v = objective(t.params)
        study.tell(t, (v, t.params["s1.kernel"] * t.params["s2.width"]) if multi else v)
    return study


def test_the_papers_strategies_are_registered():
    # MnasNet's controller, aging evolution and the random baseline; others may be added freely
    assert {"rl", "evolution", "random"} <= set(names())
    assert names() == list(STRATEGIES)


@pytest.mark.parametrize("name", SINGLE)
def test_every_registered_strategy_has_the_factory_signature(name):
    module, _, func = STRATEGIES[name].partition(":")
    factory = getattr(__import__(module, fromlist=[func]), func)
    params = inspect.signature(factory).parameters
    first = next(iter(params.values()))
    assert first.kind in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD), "space must come first"
    for key in ("seed", "multi_objective"):
        assert params[key].kind is inspect.Parameter.KEYWORD_ONLY, f"{name}: {key} must be keyword-only"
    assert all(p.default is not p.empty for k, p in params.items() if p.kind is p.KEYWORD_ONLY), \
        f"{name}: every option needs a default"
    sampler = get_strategy(name, SPACE, seed=0, options=options_of(name))  # its own defaults are accepted
    assert isinstance(sampler, optuna.samplers.BaseSampler)


@pytest.mark.parametrize("name", SINGLE)
def test_ask_tell_gives_valid_choices(name):
    study = run(name, seed=0)
    trials = study.get_trials()
    assert len(trials) == 40 and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        assert set(t.params) == set(SPACE)
        for k, v in t.params.items():
            assert v in SPACE[k].choices and type(v) is type(SPACE[k].choices[SPACE[k].choices.index(v)])


@pytest.mark.parametrize("name", SINGLE)
def test_same_seed_same_trials(name):
    a = [t.params for t in run(name, seed=3).trials]
    b = [t.params for t in run(name, seed=3).trials]
    c = [t.params for t in run(name, seed=4).trials]
    assert a == b
    assert a != c


@pytest.mark.parametrize("name", SINGLE)
def test_multi_objective_works_or_is_refused_clearly(name):
    try:
        get_strategy(name, SPACE, seed=1, multi_objective=True)
    except MnasError as e:
        assert "single objective" in str(e)
        return
    study = run(name, seed=1, n=30, multi=True)
    assert len(study.best_trials) >= 1
    assert all(set(t.params) == set(SPACE) for t in study.trials)


def test_rl_refuses_multi_objective():
    with pytest.raises(MnasError, match="single objective"):
        get_strategy("rl", SPACE, seed=0, multi_objective=True)


@pytest.mark.parametrize("name", SINGLE)
def test_unknown_option_is_an_error(name):
    with pytest.raises(MnasError, match=rf"strategy '{name}': unknown option\(s\) \['populaton_size'\]"):
        get_strategy(name, SPACE, seed=0, options={"populaton_size": 10})


def test_unknown_strategy_is_an_error():
    with pytest.raises(MnasError, match="unknown strategy 'ppo'.*rl, evolution"):
        get_strategy("ppo", SPACE)


def test_options_listed_with_defaults():
    # chosen in benchmarks/results/peers_anb.md: half NNI's population (100), its 1/4 tournament ratio, its mutation
    assert options_of("evolution") == {"population_size": 50, "sample_size": 12, "mutation_prob": 0.05, "dedup": True}
    assert "batch_size" in options_of("rl") and "population_size" in options_of("nsga2")


@pytest.mark.parametrize("name, bad", [("evolution", {"sample_size": 60}), ("evolution", {"mutation_prob": 0.0}), ("rl", {"batch_size": 1}),
                                       ("nsga2", {"population_size": 1}), ("tpe", {"n_startup_trials": 0})])
def test_bad_option_values(name, bad):
    with pytest.raises(MnasError, match=name):
        get_strategy(name, SPACE, seed=0, options=bad)


def test_evolution_children_differ_from_a_population_member_by_one_choice():
    study = run("evolution", seed=0, n=60, population_size=10, sample_size=3, mutation_prob=None)
    trials = study.trials
    for t in trials[10:]:
        population = trials[t.number - 10 : t.number]  # aging: the 10 most recent
        assert any(sum(t.params[k] != p.params[k] for k in SPACE) == 1 for p in population), t.number


def test_evolution_beats_its_random_start():
    study = run("evolution", seed=0, n=80, population_size=10, sample_size=5)
    first = max(t.value for t in study.trials[:10])
    assert study.best_value > first
    assert study.best_value == pytest.approx(1.0)  # the unique optimum, within 80 of 108 networks


def test_rl_policy_learns_the_rewarded_choice():
    # reward 1 when kernel 7 is taken, else 0: after a few PPO updates the policy
    # samples kernel 7 far more often than the uniform 1/3.
    sampler = get_strategy("rl", SPACE, seed=0, options={"batch_size": 10, "lr": 0.05})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(150):
        t = study.ask(SPACE)
        study.tell(t, float(t.params["s1.kernel"] == 7))
    last = [t.params["s1.kernel"] for t in study.trials[-30:]]
    assert sampler.updates >= 10
    assert last.count(7) / len(last) > 0.8
    assert not math.isnan(sampler.baseline)


def test_evolution_dedup_never_measures_a_network_twice():
    # 108 networks, 100 trials: without dedup, aging evolution revisits networks (the population
    # converges); with it every trial is a network not tried before
    def distinct(dedup):
        study = run("evolution", seed=0, n=100, population_size=10, sample_size=5, dedup=dedup)
        return len({tuple(sorted(t.params.items())) for t in study.trials})

    assert distinct(True) == 100
    assert distinct(False) < 100


@pytest.mark.parametrize("mutation_prob", [None, 0.2])
def test_evolution_children_always_differ_from_their_parent(mutation_prob):
    # a population of 10 copies of one network: every child is a mutation of it, so it must differ from it;
    # one-choice mutation (None) by exactly one choice, per-choice redraws by one or more
    from optuna.trial import create_trial

    x = {"s1.kernel": 5, "s1.act": "re", "s1.se": False, "s2.width": 1.0, "s2.depth": 0}
    sampler = get_strategy("evolution", SPACE, seed=0,
                           options={"population_size": 10, "sample_size": 3, "mutation_prob": mutation_prob, "dedup": False})
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.add_trials([create_trial(params=x, distributions=SPACE, value=0.5) for _ in range(10)])
    children = [study.ask(SPACE).params for _ in range(30)]
    changed = [sum(c[k] != v for k, v in x.items()) for c in children]
    assert min(changed) >= 1
    if mutation_prob is None:
        assert set(changed) == {1}
    else:
        assert max(changed) > 1


def test_bo_finds_the_unique_optimum_quickly():
    # the objective is additive in the choices (what bo's linear kernel part models): the unique optimum
    # (value 1) of 108 networks is found within 25 trials for every seed; random needs ~54 on average
    for seed in range(3):
        study = run("bo", seed=seed, n=25, n_startup=8)
        assert study.best_value == pytest.approx(1.0), seed
        assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 25  # never a network twice


def test_bo_minimises_as_well():
    sampler = get_strategy("bo", SPACE, seed=0, options={"n_startup": 8})
    study = optuna.create_study(direction="minimize", sampler=sampler)
    for _ in range(25):
        t = study.ask(SPACE)
        study.tell(t, -objective(t.params))
    assert study.best_value == pytest.approx(-1.0)
