"""Pareto fronts and search curves: compute first (pandas, no matplotlib), draw second.

* :func:`pareto_front` — the non-dominated trials (highest accuracy, lowest latency) as a table;
* :func:`hypervolume` — the 2-D area a front dominates up to a reference point;
* :func:`search_curve` — reward per trial and best so far;
* :func:`plot_pareto`, :func:`plot_search` — the renderers (matplotlib, imported inside).

A run is a run folder written by ``mnas search`` (its ``trials.csv``) or a DataFrame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mnas.errors import MnasError

ACC, LAT = "accuracy", "latency_ms"



def save_figure(fig, out_png: str | Path) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure; returns the path."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    from mnas.io import atomic_output

    out = Path(out_png)
    try:
        with atomic_output(out) as tmp:  # the image's type comes from the suffix, kept by the temporary name
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return out

def pareto_front(df: pd.DataFrame, acc_col: str = ACC, lat_col: str = LAT) -> pd.DataFrame:
    """Rows no other row beats on both axes (higher ``acc_col``, lower ``lat_col``), by latency.

    Of rows with identical (accuracy, latency) only the first is kept. NaN rows are ignored.
    """
    for c in (acc_col, lat_col):
        if c not in df.columns:
            raise MnasError(f"table has no column {c!r} (columns: {', '.join(map(str, df.columns))})")
    d = df.dropna(subset=[acc_col, lat_col])
    # Sort by latency ascending, then accuracy descending: a row is on the front
    # iff its accuracy beats every faster-or-equal row's before it.
    order = np.lexsort((-d[acc_col].to_numpy(), d[lat_col].to_numpy()))
    keep, best = [], -np.inf
    acc = d[acc_col].to_numpy()
    for i in order:
        if acc[i] > best:
            keep.append(i)
            best = acc[i]
    return d.iloc[keep]


def hypervolume(points: pd.DataFrame | Sequence[tuple[float, float]], ref: tuple[float, float],
                acc_col: str = ACC, lat_col: str = LAT) -> float:
    """Area dominated by ``points`` (accuracy up, latency down) and bounded by ``ref = (acc, latency)``.

    Points worse than the reference on either axis add nothing.
    """
    if isinstance(points, pd.DataFrame):
        pts = points[[acc_col, lat_col]].to_numpy(dtype=float)
    else:
        pts = np.asarray(list(points), dtype=float).reshape(-1, 2)
    ref_acc, ref_lat = float(ref[0]), float(ref[1])
    pts = pts[(pts[:, 0] > ref_acc) & (pts[:, 1] < ref_lat)]
    if len(pts) == 0:
        return 0.0
    front = pareto_front(pd.DataFrame({"a": pts[:, 0], "l": pts[:, 1]}), "a", "l")
    a, lat = front["a"].to_numpy(), front["l"].to_numpy()  # latency ascending, accuracy ascending
    # Sweep by latency: between lat[i] and lat[i+1] the best accuracy reachable is a[i].
    edges = np.append(lat[1:], ref_lat)
    return float(np.sum((edges - lat) * (a - ref_acc)))


def search_curve(df: pd.DataFrame, col: str = "reward") -> pd.DataFrame:
    """Completed trials in order with ``col`` and its running best (``best``)."""
    if col not in df.columns:
        raise MnasError(f"table has no column {col!r}")
    d = df
    if "state" in d.columns:
        d = d[d["state"] == "COMPLETE"]
    d = d.dropna(subset=[col]).sort_values("number" if "number" in d.columns else col, kind="stable")
    out = pd.DataFrame({"trial": d["number"].to_numpy() if "number" in d.columns else np.arange(len(d)),
                        col: d[col].to_numpy()})
    out["best"] = out[col].cummax()
    return out


def load_trials(run: str | Path | pd.DataFrame) -> pd.DataFrame:
    """A run folder's trials table (``trials.parquet`` or ``trials.csv``), or the DataFrame itself."""
    if isinstance(run, pd.DataFrame):
        return run
    path = Path(run)
    if path.is_dir():
        for name in ("trials.parquet", "trials.csv"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise MnasError(f"{run}: no trials.csv in this folder (is it a `mnas search` run folder?)")
    if not path.is_file():
        raise MnasError(f"{run}: no such run folder or trials table")
    from mnas.io import read_table_file

    df = read_table_file(path, "trials table")  # a damaged file: one line naming it
    if "state" in df.columns:
        df = df[df["state"] == "COMPLETE"]
    return df


# what each evaluator's accuracy is, for axis labels (an estimate is never called "accuracy")
METRIC_LABELS: dict[str, str] = {
    "imagenet": "est. ImageNet top-1 (%), `imagenet` estimate",
    "anb": "ImageNet top-1 (%), Accel-NASBench `anb` surrogate (16-epoch proxy)",
    "ofa": "ImageNet holdout top-1 (%), OFA's `ofa` predictor",
    "table": "top-1 (%), benchmark `table`",
    "predictor": "est. top-1 (%), `predictor`",
    "supernet": "top-1 (%), weight-sharing `supernet`",
    "train": "top-1 (%), proxy training (`train`)",
    "madds": "multiply-adds proxy (`madds`)",
}
# evaluators that score ImageNet top-1: beside them a published ImageNet result means the same thing
IMAGENET_EVALUATORS = frozenset({"imagenet", "anb", "ofa"})


def accuracy_label(evaluator: str | None) -> str:
    """The axis label naming what ``evaluator``'s accuracy is."""
    if not evaluator:
        return "top-1 (%)"
    return METRIC_LABELS.get(evaluator, f"top-1 (%), `{evaluator}`")


def published_top1() -> dict[str, float]:
    """Published ImageNet top-1 of the zoo's networks at width 1.0 and 224 px (``mnas/accuracy/published``)."""
    import csv

    from mnas.accuracy.imagenet import PUBLISHED_CSV

    out: dict[str, float] = {}
    with open(PUBLISHED_CSV, newline="") as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            if float(r["width"]) == 1.0 and int(r["resolution"]) == 224:
                out.setdefault(r["model"], float(r["top1"]))
    return out


REFERENCE_LABELS = {"mobilenet_v3_large": "MobileNetV3-Large", "mobilenet_v3_small": "MobileNetV3-Small",
                    "mobilenet_v2": "MobileNetV2", "mnasnet_a1": "MnasNet-A1"}


def _run_label(run, k: int) -> str:
    """A run's legend name: its folder name, or (for a timestamped folder) its strategy and seed."""
    import re

    if isinstance(run, pd.DataFrame):
        return f"run {k + 1}"
    path = Path(run)
    name = path.name if path.is_dir() else path.parent.name
    if not re.fullmatch(r"[0-9_\-T]+", name):
        return name
    try:
        import yaml

        cfg = yaml.safe_load((path / "config.yaml").read_text()) if path.is_dir() else None
    except (OSError, ValueError, yaml.YAMLError):
        cfg = None
    if isinstance(cfg, dict) and cfg.get("strategy"):
        return f"{cfg['strategy']} search, seed {cfg.get('seed', '?')}"
    return name


def pareto_plot_data(runs, references: pd.DataFrame | None = None, *, target_ms: float | None = None,
                     chosen: dict | None = None, acc_col: str = ACC, lat_col: str = LAT) -> dict:
    """What :func:`plot_pareto` draws, as data (tests check this, not pixels).

    ``{"runs": [{"label", "points", "front"}], "references": DataFrame (name, label, latency_ms,
    accuracy (the evaluator's, NaN when it cannot score the network), published (NaN when none)),
    "target_ms", "chosen": {"latency_ms", "accuracy", "arch"} or None, "left_out": [reference names]}``.
    The front is the staircase of :func:`pareto_front`. References beyond 1.5× the slowest trial are
    left out (and named in ``left_out``): a CIFAR space beside ImageNet networks would only squash the plot.
    """
    if isinstance(runs, (str, Path, pd.DataFrame)):
        runs = [runs]
    out_runs, max_lat = [], 0.0
    for k, run in enumerate(runs):
        df = load_trials(run)
        out_runs.append({"label": _run_label(run, k), "points": df[[lat_col, acc_col]].dropna(),
                         "front": pareto_front(df, acc_col, lat_col)[[lat_col, acc_col]]})
        if len(df):
            max_lat = max(max_lat, float(df[lat_col].max()))
    refs = pd.DataFrame(columns=["name", "label", lat_col, acc_col, "published"])
    left_out: list[str] = []
    if references is not None and len(references):
        refs = references.copy()
        for c in (acc_col, "published"):
            if c not in refs.columns:
                refs[c] = np.nan
        refs["label"] = [REFERENCE_LABELS.get(n, n) for n in refs["name"]]
        if max_lat:
            far = refs[lat_col] > 1.5 * max_lat
            left_out = list(refs.loc[far, "name"])
            refs = refs[~far]
        refs = refs[["name", "label", lat_col, acc_col, "published"]].reset_index(drop=True)
    return {"runs": out_runs, "references": refs, "target_ms": target_ms, "chosen": chosen, "left_out": left_out}


def plot_pareto(runs, out_png: str | Path, device: str | None = None, *,
                references: pd.DataFrame | None = None, acc_col: str = ACC, lat_col: str = LAT,
                target_ms: float | None = None, chosen: dict | None = None, evaluator: str | None = None,
                title: str | None = None, data_out: dict | None = None) -> Path:
    """All trials of ``runs`` (folders or DataFrames), each run's front as a staircase, the reference
    networks as points (the evaluator's value filled, the published value hollow), the target as a
    line and the chosen network ringed. ``references``: columns ``name``, ``latency_ms`` and optionally
    ``accuracy`` (the run's evaluator) and ``published`` (e.g. :func:`mnas.run.zoo_references`).
    ``device`` labels the latency axis, ``evaluator`` the accuracy axis. ``data_out``, a dict, receives
    what was drawn (:func:`pareto_plot_data`, plus the axis label and title).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = pareto_plot_data(runs, references, target_ms=target_ms, chosen=chosen, acc_col=acc_col, lat_col=lat_col)
    if data_out is not None:
        data_out.update(data, ylabel=accuracy_label(evaluator), title=title)
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=120)
    for k, r in enumerate(data["runs"]):
        color = f"C{k}"
        pts, front = r["points"], r["front"]
        ax.scatter(pts[lat_col], pts[acc_col], s=8, alpha=0.3, color=color, label=f"{r['label']}: {len(pts)} trials")
        if len(front):
            # the staircase: the best accuracy reachable at each latency, held until the next front point
            xs = list(front[lat_col]) + [float(pts[lat_col].max())]
            ys = list(front[acc_col]) + [float(front[acc_col].iloc[-1])]
            ax.step(xs, ys, where="post", color=color, lw=1.5)
            ax.scatter(front[lat_col], front[acc_col], s=22, edgecolor="k", color=color, zorder=3,
                       label=f"{r['label']}: Pareto front ({len(front)})")
    refs = data["references"]
    shown_eval = shown_pub = False
    for i, (_, r) in enumerate(refs.sort_values(lat_col).iterrows()):
        ys = []
        if pd.notna(r[acc_col]):
            ax.scatter([r[lat_col]], [r[acc_col]], marker="*", s=110, color="crimson", zorder=5,
                       label=None if shown_eval else "reference, scored by the same evaluator")
            ys.append(r[acc_col])
            shown_eval = True
        if pd.notna(r["published"]):
            ax.scatter([r[lat_col]], [r["published"]], marker="o", s=60, facecolors="none", edgecolors="crimson",
                       lw=1.3, zorder=5, label=None if shown_pub else "reference, published ImageNet top-1")
            ys.append(r["published"])
            shown_pub = True
        if len(ys) == 2:
            ax.plot([r[lat_col]] * 2, ys, color="crimson", lw=0.7, ls=":", zorder=4)
        if ys:
            # labels alternate above and below so that neighbours do not overlap
            ax.annotate(r["label"], (r[lat_col], max(ys) if i % 2 == 0 else min(ys)), fontsize=7, color="crimson",
                        xytext=(4, 6 if i % 2 == 0 else -11), textcoords="offset points")
        else:  # neither value: its latency alone, as a line
            ax.axvline(r[lat_col], color="crimson", ls=":", lw=0.8)
            ax.annotate(r["label"], (r[lat_col], 0.02), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
                        color="crimson", va="bottom")
    if data["target_ms"]:
        ax.axvline(data["target_ms"], color="0.25", ls="--", lw=1, label=f"target {data['target_ms']:g} ms", zorder=2)
    c = data["chosen"]
    if c:
        ax.scatter([c[lat_col]], [c[acc_col]], s=190, facecolors="none", edgecolors="k", lw=2, zorder=6,
                   label=f"chosen: {c[acc_col]:.2f} at {c[lat_col]:.2f} ms")
    ax.margins(x=0.06, y=0.08)
    ax.set_xlabel(f"latency (ms){' on ' + device if device else ''}")
    ax.set_ylabel(accuracy_label(evaluator))
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right", framealpha=0.85)
    return save_figure(fig, out_png)


def plot_search(run, out_png: str | Path, col: str = "reward") -> Path:
    """Reward of every completed trial and the best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = search_curve(load_trials(run), col)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    ax.scatter(curve["trial"], curve[col], s=6, alpha=0.4, label=col)
    ax.plot(curve["trial"], curve["best"], color="k", lw=1.5, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(col)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, out_png)
