"""One run lifecycle (mnas/run.py): the same evaluator, dataset rule, cache file, option parser and budget
table for search, NetAdapt and the replays; and a replay's saved search config redoes its search."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mnas import zoo
from mnas.errors import MnasError
from mnas.run import BUDGETS, EVAL_CACHE, build_evaluator, parse_options


def test_parse_options_reads_yaml_values_and_names_the_flag_on_bad_input():
    assert parse_options(["epochs=3", "lr=0.1", "augment=false", "name=abc", "batch-size=8"], "--x") == {
        "epochs": 3, "lr": 0.1, "augment": False, "name": "abc", "batch_size": 8}
    for bad in ("epochs", "=3"):
        with pytest.raises(MnasError, match=r"--eval-option .*expected KEY=VALUE"):
            parse_options([bad], "--eval-option")


def test_the_three_clis_share_one_parser():
    from mnas.cli import eval as cli_eval
    from mnas.cli import netadapt as cli_netadapt
    from mnas.cli import search as cli_search

    for parse, flag in ((lambda x: cli_search._options(x, "--evaluator-option"), "--evaluator-option"),
                        (cli_netadapt._options, "--eval-option"), (cli_eval.parse_options, "--option")):
        assert parse(["steps=5"]) == {"steps": 5}
        with pytest.raises(MnasError, match=f"{flag} 'steps': expected KEY=VALUE"):
            parse(["steps"])


def test_one_budget_table_feeds_the_replay_and_netadapt():
    from mnas.netadapt import NetAdaptConfig
    from mnas.replay import ReplayConfig

    for name, b in BUDGETS.items():
        na = NetAdaptConfig(arch=str(zoo.get("mobilenet_v3_small")), device="pixel1", target_ms=10.0, budget=name)
        assert {k: getattr(na, k) for k in b.netadapt} == b.netadapt
        r = ReplayConfig("v3-small", budget=name)
        assert (r.delta, r.trials, r.strategy, r.backend) == (b.delta, b.trials, b.strategy, b.backend)
    # the paper's NetAdapt fine-tunes T = 10,000 steps per proposal (MobileNetV3, Sec. 5.2)
    assert BUDGETS["paper"].netadapt["finetune_steps"] == 10_000


def test_a_dataset_that_does_not_apply_is_the_same_error_in_search_and_replay(tmp_path):
    from mnas.replay import Replay, ReplayConfig
    from mnas.search.config import SearchConfig
    from mnas.search.runner import build_components

    with pytest.raises(MnasError, match="--dataset does not apply to the imagenet evaluator") as a:
        build_components(SearchConfig(target_ms=15, evaluator="imagenet", dataset="digits"), tmp_path)
    replay = Replay(tmp_path / "r", ReplayConfig("v3-large", budget="smoke", dataset="digits"))
    with pytest.raises(MnasError, match="--dataset does not apply to the imagenet evaluator") as b:
        replay.evaluator
    assert str(a.value) == str(b.value)
    # an evaluator that trains takes it
    ev = build_evaluator("train", {"steps": 8}, "v3_small", dataset="digits")
    assert ev.config()["dataset"] == "digits"


def test_one_cache_file_name_for_evaluators_that_compute(tmp_path):
    ev = build_evaluator("train", {"steps": 8}, "v3_small", dataset="digits", run_dir=tmp_path)
    assert ev.cache.path == tmp_path / EVAL_CACHE
    explicit = build_evaluator("train", {"steps": 8, "cache": str(tmp_path / "mine.sqlite")}, "v3_small", run_dir=tmp_path)
    assert explicit.cache.path == tmp_path / "mine.sqlite"
    instant = build_evaluator("imagenet", {"warn": False}, "v3_small", run_dir=tmp_path)  # a fitted formula: no file
    assert instant.cache.path is None


def test_a_replays_saved_search_config_reproduces_its_search(tmp_path, capsys):
    """`mnas search --config <replay>/search/config.yaml` redoes the replay's search trial for trial,
    with the replay's evaluator options (here: another imagenet-estimate model file)."""
    from mnas.cli import main
    from mnas.replay import ReplayConfig, run_replay

    shipped = json.loads((zoo_root() / "accuracy" / "models" / "imagenet.json").read_text())
    model = tmp_path / "imagenet_minus10.json"
    model.write_text(json.dumps({**shipped, "intercept": shipped["intercept"] - 10.0}))
    run = tmp_path / "replay"
    run_replay(ReplayConfig("v3-small", budget="smoke", evaluator_options={"model": str(model), "warn": False}), run,
               progress=False)
    theirs = pd.read_csv(run / "search" / "trials.csv")
    assert len(theirs) == BUDGETS["smoke"].trials

    again = tmp_path / "again"
    assert main(["search", "--config", str(run / "search" / "config.yaml"), "--out", str(again), "--no-progress"]) == 0
    capsys.readouterr()
    ours = pd.read_csv(again / "trials.csv")
    cols = [c for c in theirs.columns if c not in ("datetime_start", "duration_s", "eval_cost_s")]
    pd.testing.assert_frame_equal(ours[cols], theirs[cols])

    # the option reached the search: each accuracy is the shipped estimate 10 points down
    from mnas.accuracy import get_evaluator

    plain = get_evaluator("imagenet", space="v3_small", warn=False)
    from mnas.arch import parse_network

    first = theirs.iloc[0]
    assert first["accuracy"] == pytest.approx(plain.evaluate(parse_network(first["arch"]))["top1"] - 10.0, abs=1e-6)


def zoo_root():
    import mnas

    from pathlib import Path

    return Path(mnas.__file__).parent


def test_search_netadapt_and_replay_cache_in_the_same_file(tmp_path):
    from mnas.netadapt import NetAdapt, NetAdaptConfig
    from mnas.replay import Replay, ReplayConfig
    from mnas.search.config import SearchConfig
    from mnas.search.runner import build_components

    opts = {"steps": 8}
    search = build_components(SearchConfig(target_ms=15, evaluator="train", evaluator_options=opts, dataset="digits"),
                              tmp_path / "s").evaluator
    replay = Replay(tmp_path / "r", ReplayConfig("v3-large", budget="smoke", evaluator="train", evaluator_options=opts,
                                                 dataset="digits")).evaluator
    na = NetAdapt(tmp_path / "n", NetAdaptConfig(arch=str(zoo.get("mobilenet_v3_small")), device="pixel1", target_ms=10.0,
                                                 evaluator="train", evaluator_options=opts, dataset="digits")).evaluator
    assert [e.cache.path for e in (search, replay, na)] == [tmp_path / d / EVAL_CACHE for d in ("s", "r", "n")]
    assert search.config() == replay.config() == na.config()  # the same evaluator, built the same way


def test_a_trials_row_holds_exactly_the_declared_keys():
    from mnas.search.config import SearchConfig
    from mnas.search.runner import ROW_KEYS, build_components, measure

    for space, evaluator, device in (("v3_small", "predictor", "pixel1"), ("anb", "anb", "madds")):
        comp = build_components(SearchConfig(target_ms=15, space=space, evaluator=evaluator, device=device))
        sample = {c.name: c.options[0] for c in comp.space.choices()}
        has_code = getattr(comp.space, "encode_string", None) is not None  # spaces with a compact encoding
        assert set(measure(comp, sample)) == set(ROW_KEYS) - (set() if has_code else {"code"})
