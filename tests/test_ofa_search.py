"""OFA's search on its home ground: the ``ofa-evolution`` strategy and OFA's Note10 tables over resolutions.

The strategy is checked against OFA's algorithm (``mit-han-lab/once-for-all``,
``tutorial/evolution_finder.py``): parents are the best networks found before a generation,
mutants copy one, crossovers take each choice from one of two, and every sample meets the
constraint. The latency tests rebuild OFA's own estimator (``tutorial/latency_table.py``:
``predict_network_latency_given_spec``) from the raw YAML files and compare it with mnas's sum.
"""

from __future__ import annotations

import random

import numpy as np
import optuna
import pytest
import yaml

from mnas.errors import MnasError
from mnas.search.strategies import get_strategy, options_of
from mnas.search.strategies.base import distributions
from mnas.search.strategies.ofa_evolution import genes
from mnas.space import load_space

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def space():
    return load_space("ofa")


@pytest.fixture(scope="module")
def dists(space):
    return distributions(space.choices())


def toy_value(p: dict) -> float:
    """A deterministic score with a unique best (kernel 7, expansion 6 everywhere, depth 4, 224 px)."""
    return sum(v for k, v in p.items() if k.endswith((".kernel", ".expand", ".layers"))) + p["resolution"] / 100


def drive(sampler, dists, n: int, study=None, value=toy_value):
    study = study or optuna.create_study(direction="maximize", sampler=sampler)
    for _ in range(n):
        t = study.ask(dists)
        study.tell(t, value(t.params))
    return study


# --------------------------------------------------------------------------- the strategy


def test_defaults_are_the_tutorials_settings():
    # tutorial/ofa.ipynb, section 3.1: P = 100, r = 0.25, 'mutate_prob': 0.1, 'mutation_ratio': 0.5
    o = options_of("ofa-evolution")
    assert (o["population_size"], o["parent_ratio"], o["mutation_ratio"], o["mutate_prob"]) == (100, 0.25, 0.5, 0.1)


def test_genes_are_ofas(space):
    # OFA's arch dict: 20 block slots (kernel and expansion re-drawn together), 5 depths, 1 resolution
    names = [c.name for c in space.choices()]
    g = genes(names)
    assert len(g) == 26
    assert sorted(len(x) for x in g) == [1] * 6 + [2] * 20
    assert [names[x[0]] for x in g if len(x) == 1] == ["resolution"] + [f"s{i}.layers" for i in range(1, 6)]
    pair = next(x for x in g if names[x[0]] == "s3.l2.kernel")
    assert [names[i] for i in pair] == ["s3.l2.kernel", "s3.l2.expand"]


def test_mutants_copy_a_best_so_far_parent_and_crossovers_mix_two(dists):
    # mutate_prob 0: a mutant is an exact copy of a parent, and the parents of generation g are the
    # parents_size best of all trials before it (checked here by sorting the trials independently)
    p, k = 10, 3
    opts = dict(population_size=p, parent_ratio=0.3, mutation_ratio=0.5, mutate_prob=0.0, resolution_mutate_prob=0.0)
    study = drive(get_strategy("ofa-evolution", dists, seed=0, options=opts), dists, p + 3 * p,
                  value=lambda q: toy_value(q) + random.Random(str(q)).random())  # distinct values
    trials = study.trials
    for g in range(3):
        start = p + g * p
        best = sorted(trials[:start], key=lambda t: -t.value)[:k]
        for t in trials[start:start + p // 2]:  # mutants
            assert any(t.params == b.params for b in best), t.number
        for t in trials[start + p // 2:start + p]:  # crossovers: every choice from one of two parents
            assert any(all(t.params[n] in (a.params[n], b.params[n]) for n in dists) for a in best for b in best)


def test_a_resumed_study_carries_on_from_its_stored_trials(dists):
    # a fresh sampler on a study that already holds 25 trials (another process's) starts generation 2 from them
    p = 10
    opts = dict(population_size=p, parent_ratio=0.2, mutate_prob=0.0, resolution_mutate_prob=0.0, mutation_ratio=1.0)
    first = drive(get_strategy("ofa-evolution", dists, seed=1, options=opts), dists, 2 * p + 5)
    resumed = optuna.create_study(direction="maximize",
                                  sampler=get_strategy("ofa-evolution", dists, seed=99, options=opts))
    resumed.add_trials(first.trials)
    drive(resumed.sampler, dists, p, study=resumed)
    best_before_gen2 = sorted(first.trials[: 2 * p], key=lambda t: -t.value)[:2]
    for t in resumed.trials[2 * p:3 * p]:
        assert any(t.params == b.params for b in best_before_gen2), t.number
    best_before_gen3 = sorted(resumed.trials[: 3 * p], key=lambda t: -t.value)[:2]
    for t in resumed.trials[3 * p:]:
        assert any(t.params == b.params for b in best_before_gen3), t.number


def test_it_improves_on_its_random_population(dists):
    study = drive(get_strategy("ofa-evolution", dists, seed=0, options={"population_size": 10}), dists, 10 + 10 * 10)
    first = max(t.value for t in study.trials[:10])
    assert study.best_value > first + 5  # 46 choices: the random start is far from the optimum (~122.2)


def _screen(space, target):
    from mnas.latency import get_predictor
    from mnas.search.screen import Screen

    return Screen(space, get_predictor("madds"), target)  # "ms" = millions of multiply-adds here


class IndexCost:
    """A stand-in latency screen: 10 + the sum of the option indices; counts what it prices."""

    def __init__(self, dists, target_ms):
        self.dists, self.names, self.target_ms, self.priced = dists, list(dists), target_ms, 0

    def latency_indices(self, idx):
        idx = np.atleast_2d(idx)
        self.priced += len(idx)
        return 10.0 + idx.sum(1)

    def repair(self, params):  # as the real screen's: the fastest network when it fits, else one error
        if self.target_ms < 10:
            raise MnasError(f"screen: no network within {self.target_ms:g} ms")
        return {n: self.dists[n].choices[0] for n in params}  # option 0 everywhere: the stand-in's fastest


def test_every_sample_meets_the_constraint(space, dists):
    from mnas.search.screen import ScreenedSampler

    screen = _screen(space, 200.0)  # a real screen (multiply-adds as the "latency"): ~1/4 of sub-nets fit
    sampler = ScreenedSampler(get_strategy("ofa-evolution", dists, seed=0, options={"population_size": 6}), screen)
    study = drive(sampler, dists, 6 + 6)
    from mnas.counting import count
    from mnas.search.strategies.base import sample_from_params

    madds = [count(space.decode(sample_from_params(space.choices(), t.params))).madds / 1e6 for t in study.trials]
    assert max(madds) <= 200.0
    assert screen.rejected == 0  # the strategy met the target itself: the wrapper never had to reject


def test_the_search_for_a_feasible_network_is_bounded(dists):
    names = list(dists)
    s = get_strategy("ofa-evolution", dists, seed=0, options={"max_tries": 40, "population_size": 5})
    tight = IndexCost(dists, 10 + 20)  # sum of 46 indices <= 20: rare among random draws, common near the parents
    s.set_screen(tight)
    study = drive(s, dists, 5 + 10)
    for t in study.trials:  # the first population (random draws, else repaired) and the children all fit
        assert sum(dists[n].choices.index(t.params[n]) for n in names) <= 20
    assert tight.priced > 15  # it did look: some draws were over the target
    impossible = IndexCost(dists, 5.0)  # below the smallest possible (10)
    s2 = get_strategy("ofa-evolution", dists, seed=0, options={"max_tries": 40})
    s2.set_screen(impossible)
    with pytest.raises(MnasError, match="no network within 5 ms"):
        drive(s2, dists, 1)
    assert impossible.priced == 40  # exactly max_tries candidates, then one clear error


def test_bad_options_are_refused(dists):
    with pytest.raises(MnasError, match="parent_ratio 0.001 x population_size 100 keeps no parent"):
        get_strategy("ofa-evolution", dists, options={"parent_ratio": 0.001})
    with pytest.raises(MnasError, match="mutate_prob must be in"):
        get_strategy("ofa-evolution", dists, options={"mutate_prob": 1.5})


# --------------------------------------------------------------------------- Note10 over resolutions

STRIDES, WIDTHS = [2, 2, 2, 1, 2], [32, 48, 96, 136, 192]
ACTS, SES = [0, 0, 1, 1, 1], [0, 1, 0, 1, 1]


def ofa_estimate(lut: dict, spec: dict) -> float:
    """OFA's tutorial/latency_table.py predict_network_latency_given_spec, written again from its text."""
    r = spec["r"]
    f = (r + 1) // 2
    keys = [f"Conv-input:{r}x{r}x3-output:{f}x{f}x24",
            f"expanded_conv-input:{f}x{f}x24-output:{f}x{f}x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0"]
    cin = 24
    for i in range(20):
        st = i // 4
        if i % 4 + 1 > spec["d"][st]:
            continue
        s, skip = (STRIDES[st], 0) if i % 4 == 0 else (1, 1)
        fo = int((f - 1) / s + 1)
        keys.append(f"expanded_conv-input:{f}x{f}x{cin}-output:{fo}x{fo}x{WIDTHS[st]}-expand:{round(cin * spec['e'][i])}"
                    f"-kernel:{spec['ks'][i]}-stride:{s}-idskip:{skip}-se:{SES[st]}-hs:{ACTS[st]}")
        f, cin = fo, WIDTHS[st]
    keys += [f"Conv_1-input:{f}x{f}x192-output:{f}x{f}x1152", f"AvgPool2D-input:{f}x{f}x1152-output:1x1x1152",
             "Conv_2-input:1x1x1152-output:1x1x1536", "Logits-input:1x1x1536-output:1000"]
    return sum(lut[k]["mean"] for k in keys)


def sample_of(spec: dict) -> dict:
    s: dict = {"resolution": spec["r"]}
    for st in range(5):
        s[f"s{st + 1}.layers"] = spec["d"][st]
        for j in range(4):
            s[f"s{st + 1}.l{j + 1}.kernel"] = spec["ks"][st * 4 + j]
            s[f"s{st + 1}.l{j + 1}.expand"] = spec["e"][st * 4 + j]
    return s


@pytest.fixture(scope="module")
def note10_dir(shared_data):
    d = shared_data / "latency" / "note10_ofa"
    if not (d / "224_lookup_table.yaml").is_file():
        pytest.skip(f"{d} is absent")
    return d


@pytest.fixture(scope="module")
def note10(note10_dir, tmp_path_factory):
    """The folder imported the way a user does it: `mnas latency import-ofa DIR`, then read by device name."""
    from mnas.cli import main
    from mnas.latency.predictor import Predictor
    from mnas.latency.table import load_table

    out = tmp_path_factory.mktemp("tables") / "note10.csv"
    assert main(["latency", "import-ofa", str(note10_dir), "--device", "note10", "--out", str(out)]) == 0
    return Predictor(load_table(out))


def test_note10_sums_are_ofas_estimator_at_every_resolution(space, note10_dir, note10):
    rng = random.Random(0)
    for path in sorted(note10_dir.glob("*_lookup_table.yaml")):
        r = int(path.name.split("_")[0])
        lut = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for _ in range(3):
            spec = {"ks": [rng.choice((3, 5, 7)) for _ in range(20)], "e": [rng.choice((3, 4, 6)) for _ in range(20)],
                    "d": [rng.choice((2, 3, 4)) for _ in range(5)], "r": r}
            net = space.decode(sample_of({**spec, "r": 224})).with_resolution(r)
            # the CSV keeps 6 significant digits per op: ~1e-6 ms each
            assert note10.predict(net) == pytest.approx(ofa_estimate(lut, spec), abs=1e-4), (r, spec)


def test_the_tutorials_network_takes_its_published_24_73_ms(space, note10):
    # tutorial/ofa.ipynb: "81.71% predicted accuracy with 24.73 ms latency on note10", r192
    spec = {"ks": [5, 3, 3, 3, 5, 3, 3, 3, 7, 7, 3, 3, 5, 5, 7, 3, 3, 3, 5, 3],
            "e": [3, 3, 3, 3, 4, 4, 3, 3, 6, 3, 4, 3, 4, 4, 4, 3, 6, 6, 6, 3], "d": [2, 2, 3, 4, 3], "r": 192}
    assert note10.predict(space.decode(sample_of(spec))) == pytest.approx(24.73, abs=0.005)


def test_every_resolution_of_the_space_is_priced_and_others_are_refused(space, note10):
    rng = random.Random(1)
    samples = [space.sample(rng) for _ in range(100)]
    assert {s["resolution"] for s in samples} == {160, 176, 192, 208, 224}
    assert all(note10.missing(space.decode(s)) == [] for s in samples)
    net = space.decode(samples[0]).with_resolution(170)
    with pytest.raises(MnasError, match="per-resolution tables for 160, 164, .*224 px only: a network at 170 px"):
        note10.predict(net)


@pytest.mark.slow
def test_the_vectorised_path_prices_each_resolution_from_its_own_table(space, note10):
    fast = note10.compile_space(space)  # refuses to build when it disagrees with the per-network path
    rng = random.Random(2)
    samples = [space.sample(rng) for _ in range(300)]
    ms = fast.predict_indices(fast.encode(samples))
    assert np.allclose(ms, note10.predict_many(space.decode(s) for s in samples), rtol=1e-12)


@pytest.mark.slow
def test_mnas_search_on_note10_under_25_ms_with_ofa_evolution(space, note10_dir, tmp_path, monkeypatch):
    # the command, end to end: import the folder by device name, search with OFA's evolution
    import pandas as pd

    from mnas.cli import main

    tables = tmp_path / "tables"
    assert main(["latency", "import-ofa", str(note10_dir), "--device", "note10", "--out", str(tables / "note10.csv")]) == 0
    monkeypatch.setenv("MNAS_LATENCY_TABLES", str(tables))
    run = tmp_path / "run"
    assert main(["search", "--space", "ofa", "--evaluator", "ofa", "--device", "note10", "--target-ms", "25",
                 "--reward", "hard", "--strategy", "ofa-evolution", "--strategy-option", "population_size=10",
                 "--trials", "30", "--out", str(run), "--no-progress"]) == 0
    df = pd.read_csv(run / "trials.csv")
    assert len(df) == 30 and (df["state"] == "COMPLETE").all()
    luts = {r: yaml.load((note10_dir / f"{r}_lookup_table.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", None)
                         or yaml.SafeLoader) for r in (160, 176, 192, 208, 224)}
    for _, t in df.iterrows():
        spec = {"r": int(t["resolution"]), "d": [int(t[f"s{i}.layers"]) for i in range(1, 6)],
                "ks": [int(t[f"s{i}.l{j}.kernel"]) for i in range(1, 6) for j in range(1, 5)],
                "e": [int(t[f"s{i}.l{j}.expand"]) for i in range(1, 6) for j in range(1, 5)]}
        assert t["latency_ms"] == pytest.approx(ofa_estimate(luts[spec["r"]], spec), abs=1e-4)
    assert df["latency_ms"].max() <= 25.0
