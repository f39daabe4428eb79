"""How far off is a table? Random networks measured end to end vs their prediction.

:func:`validate` samples networks from a search space (seed 1 by default; the
profiler calibrates on seed 0, so the two sets differ), predicts each with the
device's table, measures each whole network on the same engine (interleaved
rounds, see :meth:`Runner.time_networks`), and reports, for the table and for the
multiply-adds proxy side by side: MAPE, max error, fraction within ±5 % / ±10 %
and Kendall's τ. The proxy gets its best linear fit ``latency ≈ c·madds + d`` on
the validation set itself (a favourable setting for the proxy); for the same
footing the table's op sums are also reported with a linear fit on the set
(``table_refit``), next to the stored correction (``table``) and the raw sum.

Results go to ``OUT/validate.csv`` (one row per network, one column per round,
written after every round: a rerun with the same arguments resumes) and
``OUT/scatter.png``.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np

from mnas.errors import MnasError


def reuse_rounds(df, csv_path: Path) -> None:
    """Copy the ``round*`` timing columns of an earlier run's ``csv_path`` into ``df`` (same networks only)."""
    import pandas as pd

    if not csv_path.is_file():
        return
    old = pd.read_csv(csv_path, dtype={"arch": str})
    if list(old["arch"]) == list(df["arch"]):
        for c in old.columns:
            if c.startswith("round"):
                df[c] = old[c]


def error_stats(pred: np.ndarray, true: np.ndarray) -> dict:
    """MAPE, max |error| (percent), fraction within ±5 % and ±10 %, Kendall τ of pred vs true."""
    from scipy.stats import kendalltau

    pred, true = np.asarray(pred, float), np.asarray(true, float)
    rel = np.abs(pred - true) / true * 100
    tau = kendalltau(pred, true).statistic if len(pred) > 1 else float("nan")
    return {
        "mape": float(rel.mean()),
        "max_error": float(rel.max()),
        "within_5": float((rel <= 5).mean()),
        "within_10": float((rel <= 10).mean()),
        "kendall_tau": float(tau),
    }


def retest(rounds: np.ndarray) -> dict | None:
    """The ground truth against itself: each network's minimum over the even rounds vs over the odd ones.

    ``rounds`` is networks × rounds (ms). The result (``error_stats`` of one half against the other)
    bounds what any predictor can be shown to reach on these measurements: when half the rounds rank
    the networks at τ 0.8 against the other half, a predictor's τ against all rounds is limited by the
    measurement, not by the model. ``None`` with fewer than 2 rounds.
    """
    r = np.asarray(rounds, float)
    if r.ndim != 2 or r.shape[1] < 2:
        return None
    return error_stats(r[:, 0::2].min(axis=1), r[:, 1::2].min(axis=1))


def validate(device: str, samples: int = 50, space: str | None = None, engine: str | None = None, seed: int = 1,
             out: str | Path | None = None, rounds: int = 8, num_classes: int = 1000, progress: bool = True) -> dict:
    import pandas as pd

    from mnas.counting import count
    from mnas.latency import get_predictor
    from mnas.latency.profiler import ENGINES, Runner
    from mnas.space import load_space

    if samples < 2:
        raise MnasError(f"--samples must be >= 2, got {samples}")
    pred = get_predictor(device, num_classes=num_classes)
    meta = pred.table.meta
    engine = engine or str(meta.get("engine", "")).split(" ")[0]
    if engine not in ENGINES:
        raise MnasError(f"device {device!r} was not measured on a local engine ({meta.get('engine')!r}); "
                        f"give --engine onnxruntime|torch to measure against")
    calibrated = [n.split(":")[0] for n in (meta.get("correction") or {}).get("networks", []) if ":" in n]
    spaces = list(dict.fromkeys(calibrated + list(meta.get("spaces") or [])))
    space = space or (spaces[0] if spaces else None)
    if space is None:
        raise MnasError(f"table {device!r} names no search space: give --space NAME|FILE")
    sp = load_space(space)
    rng = random.Random(seed)
    chosen = [sp.sample(rng) for _ in range(samples)]
    nets = [sp.decode(s) for s in chosen]
    predicted = pred.predict_many(nets)
    op_sum = np.array([pred.op_sum(n) for n in nets])
    madds = np.array([count(n, num_classes).madds for n in nets], dtype=float)

    out = Path(out or Path("runs") / "latency_validate" / pred.device)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "validate.csv"
    df = pd.DataFrame({"arch": [sp.encode_string(s) for s in chosen], "predicted_ms": predicted,
                       "op_sum_ms": op_sum, "madds": madds})
    reuse_rounds(df, csv_path)
    runner = Runner(engine, threads=int(meta.get("threads") or 1), stat=str(meta.get("stat", "min")),
                    clock="wall" if meta.get("clock") == "wall clock" else "cpu")
    done = [c for c in df.columns if c.startswith("round")]
    if done and progress:
        sys.stderr.write(f"{csv_path}: resuming, {len(done)} of {rounds} rounds already measured\n")
    calls = runner.network_calls(nets, num_classes, progress) if len(done) < rounds else []  # built once
    for r in range(len(done), rounds):
        df[f"round{r}_ms"] = runner.time_calls(calls, rounds=1, progress=progress)[0]
        _write_csv(df, csv_path)  # after every round: a rerun resumes
    rcols = [f"round{r}_ms" for r in range(rounds)]
    measured = (df[rcols].min(axis=1) if runner.stat == "min" else df[rcols].median(axis=1)).to_numpy()
    df["measured_ms"] = measured
    c, d = np.polyfit(madds, measured, 1)
    df["madds_fit_ms"] = c * madds + d
    # the op sums given the same footing as the proxy: a linear fit on this set (separates the table's
    # accuracy from drift of the machine between calibration and validation)
    ta, tb = np.polyfit(op_sum, measured, 1)
    df["table_refit_ms"] = ta * op_sum + tb
    _write_csv(df, csv_path)

    res = {
        "device": pred.device, "engine": runner.describe(), "space": sp.name, "samples": samples, "seed": seed,
        "rounds": rounds, "stat": runner.stat, "clock": "thread CPU time" if runner.clock == "cpu" else "wall clock", "cpu": meta.get("cpu"),
        "cpu_here": __import__("mnas.latency.table", fromlist=["this_cpu"]).this_cpu()["model"], "correction": list(pred.table.correction),
        "table": error_stats(predicted, measured),
        "table_uncorrected": error_stats(op_sum, measured),
        "table_refit": {**error_stats(df["table_refit_ms"], measured), "a": float(ta), "b": float(tb)},
        "madds_proxy": {**error_stats(df["madds_fit_ms"], measured), "fit_ms_per_mmadd": float(c * 1e6),
                        "fit_intercept_ms": float(d)},
        # how repeatable the ground truth itself is: a network's rounds, max / min - 1 (median over networks)
        "round_spread_pct": float(np.median((df[rcols].max(axis=1) / df[rcols].min(axis=1) - 1) * 100)),
        "ground_truth_retest": retest(df[rcols].to_numpy()),
        "csv": str(csv_path), "plot": str(out / "scatter.png"),
    }
    from mnas.io import atomic_write_text

    atomic_write_text(out / "summary.json", json.dumps(res, indent=2) + "\n")
    scatter_plot(df, res, out / "scatter.png")
    return res


def _write_csv(df, path: Path) -> None:
    """The table through a temporary name: a kill or a full disk never leaves half a CSV."""
    from mnas.io import atomic_output

    with atomic_output(path) as tmp:
        df.to_csv(tmp, index=False)


def scatter_plot(df, res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    m = df["measured_ms"]
    lo, hi = m.min() * 0.9, m.max() * 1.1
    for ax, col, name, key in ((axes[0], "predicted_ms", "lookup table", "table"),
                               (axes[1], "madds_fit_ms", "multiply-adds (linear fit)", "madds_proxy")):
        st = res[key]
        ax.scatter(m, df[col], s=12, alpha=0.7)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.15, label="±10 %")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured latency (ms)")
        ax.set_ylabel("predicted latency (ms)")
        ax.set_title(f"{name}\nMAPE {st['mape']:.1f} %, {st['within_10'] * 100:.0f} % within ±10 %, τ {st['kendall_tau']:.2f}",
                     fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{res['device']} ({res['engine']}, {res['space']}, {res['samples']} networks)", fontsize=11)
    from mnas.plots import save_figure

    save_figure(fig, path)  # atomic: a kill leaves the old image or the new one


def render_report(res: dict) -> str:
    lines = [f"{res['device']}: {res['samples']} random {res['space']} networks, {res['engine']}, "
             f"{res['stat']} {res['clock']} of {res['rounds']} interleaved rounds, table's CPU {res['cpu']}"
             + ("" if res.get("cpu_here") in (None, res["cpu"]) else f" (measured here on {res['cpu_here']})"),
             f"{'predictor':<31} {'MAPE':>7} {'max err':>8} {'±5 %':>6} {'±10 %':>6} {'Kendall τ':>9}"]
    for key, name in (("table", "lookup table (corrected)"), ("table_uncorrected", "lookup table (raw op sum)"),
                      ("table_refit", "lookup table, fit on this set"), ("madds_proxy", "multiply-adds, fit on this set")):
        s = res[key]
        lines.append(f"{name:<31} {s['mape']:>6.2f}% {s['max_error']:>7.1f}% {s['within_5'] * 100:>5.0f}% "
                     f"{s['within_10'] * 100:>5.0f}% {s['kendall_tau']:>9.3f}")
    lines.append(f"measurement repeatability: a network's rounds differ by {res['round_spread_pct']:.1f} % (median max/min - 1)")
    if res.get("ground_truth_retest"):
        rt = res["ground_truth_retest"]
        lines.append(f"ground truth against itself (min of even vs odd rounds): MAPE {rt['mape']:.2f} %, "
                     f"τ {rt['kendall_tau']:.3f} (the most any predictor can show here)")
    lines.append(f"per-network results: {res['csv']}; plot: {res['plot']}")
    return "\n".join(lines)
