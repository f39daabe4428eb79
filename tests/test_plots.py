"""Pareto fronts and hypervolumes computed on hand-made tables (no matplotlib), then drawn."""

import pandas as pd
import pytest

from mnas.errors import MnasError
from mnas.plots import hypervolume, load_trials, pareto_front, plot_pareto, plot_search, search_curve

# name, accuracy, latency. By hand, the front is a, c, d, e: b and f are beaten by c,
# g ties c exactly (the first is kept), d is faster than e and e more accurate than d.
TABLE = pd.DataFrame(
    {
        "name": ["a", "b", "c", "d", "e", "f", "g"],
        "accuracy": [60.0, 65.0, 70.0, 74.0, 76.0, 69.0, 70.0],
        "latency_ms": [10.0, 25.0, 20.0, 30.0, 40.0, 35.0, 20.0],
    }
)


def test_pareto_front_by_hand():
    front = pareto_front(TABLE)
    # b (65 %, 25 ms) loses to c (70 %, 20 ms); f loses to c and d; g ties c exactly (first kept)
    assert list(front["name"]) == ["a", "c", "d", "e"]
    assert list(front["latency_ms"]) == [10.0, 20.0, 30.0, 40.0]  # sorted by latency


def test_pareto_front_custom_columns_and_nan():
    df = TABLE.rename(columns={"accuracy": "top1", "latency_ms": "ms"})
    df.loc[len(df)] = ["h", float("nan"), 1.0]
    assert list(pareto_front(df, "top1", "ms")["name"]) == ["a", "c", "d", "e"]
    with pytest.raises(MnasError, match="no column 'accuracy'"):
        pareto_front(df)


def test_hypervolume_by_hand():
    # reference (50 %, 50 ms); front a(60,10) c(70,20) d(74,30) e(76,40):
    # strips [10,20)x10 + [20,30)x20 + [30,40)x24 + [40,50)x26 = 100+200+240+260 = 800
    assert hypervolume(TABLE, (50.0, 50.0)) == pytest.approx(800.0)
    assert hypervolume([(60.0, 10.0)], (50.0, 50.0)) == pytest.approx(400.0)
    assert hypervolume([(40.0, 10.0), (60.0, 60.0)], (50.0, 50.0)) == 0.0  # both outside the reference box
    # dominated points add nothing
    assert hypervolume(TABLE.iloc[[0, 1, 2, 3, 4]], (50.0, 50.0)) == pytest.approx(800.0)


def test_search_curve_best_so_far():
    df = pd.DataFrame({"number": [0, 1, 2, 3], "state": ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"],
                       "reward": [1.0, None, 3.0, 2.0]})
    c = search_curve(df)
    assert list(c["trial"]) == [0, 2, 3] and list(c["best"]) == [1.0, 3.0, 3.0]


def test_renderers_write_png(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    df = TABLE.assign(number=range(len(TABLE)), state="COMPLETE", reward=TABLE["accuracy"])
    df.to_csv(run / "trials.csv", index=False)
    assert len(load_trials(run)) == len(TABLE)
    refs = pd.DataFrame({"name": ["mobilenet_v3_small", "x"], "latency_ms": [15.8, 22.0], "accuracy": [67.4, None]})
    p = plot_pareto([run, df], tmp_path / "p.png", references=refs)
    s = plot_search(run, tmp_path / "s.png")
    for f in (p, s):
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_load_trials_errors(tmp_path):
    with pytest.raises(MnasError, match="no trials.csv"):
        load_trials(tmp_path)
    with pytest.raises(MnasError, match="no such run folder"):
        load_trials(tmp_path / "nope")


def test_axis_labels_say_what_the_accuracy_is():
    """An estimate is labelled an estimate; only fine-tuning measures a validation top-1."""
    from mnas.netadapt.report import path_ylabel
    from mnas.plots import accuracy_label

    assert "estimate" in accuracy_label("imagenet") and "validation" not in path_ylabel("imagenet")
    assert "surrogate" in accuracy_label("anb")
    assert path_ylabel("finetune").startswith("validation top-1")
