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


def plot_pareto(runs, out_png: str | Path, device: str | None = None, *,
                references: pd.DataFrame | None = None, acc_col: str = ACC, lat_col: str = LAT) -> Path:
    """All trials of ``runs`` (folders or DataFrames), each run's front highlighted, reference networks marked.

    ``references`` is data (columns ``name``, ``latency_ms`` and optionally ``accuracy``), computed by
    the caller (e.g. :func:`mnas.run.zoo_references`); without an accuracy under the run's evaluator
    they are drawn as vertical lines. References beyond 1.5× the slowest trial are left out.
    ``device`` only labels the latency axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(runs, (str, Path, pd.DataFrame)):
        runs = [runs]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    max_lat = 0.0
    for k, run in enumerate(runs):
        df = load_trials(run)
        label = Path(run).name if not isinstance(run, pd.DataFrame) else f"run {k + 1}"
        sc = ax.scatter(df[lat_col], df[acc_col], s=8, alpha=0.35, label=f"{label}: {len(df)} trials")
        max_lat = max(max_lat, float(df[lat_col].max()) if len(df) else 0.0)
        front = pareto_front(df, acc_col, lat_col)
        color = tuple(np.asarray(sc.get_facecolor())[0][:3])
        ax.step(front[lat_col], front[acc_col], where="post", color=color, lw=1.5)
        ax.scatter(front[lat_col], front[acc_col], s=22, edgecolor="k", color=color,
                   label=f"{label}: Pareto front ({len(front)})", zorder=3)
    if references is not None and len(references):
        # networks far beyond the searched range (e.g. ImageNet nets beside a CIFAR space) would only squash the plot
        references = references[references[lat_col] <= 1.5 * max_lat] if max_lat else references
        for _, r in references.iterrows():
            if acc_col in references.columns and pd.notna(r.get(acc_col)):
                ax.scatter([r[lat_col]], [r[acc_col]], marker="*", s=90, color="crimson", zorder=4)
                ax.annotate(r["name"], (r[lat_col], r[acc_col]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            else:
                ax.axvline(r[lat_col], color="crimson", ls=":", lw=0.8)
                ax.text(r[lat_col], ax.get_ylim()[0], f" {r['name']}", rotation=90, fontsize=7,
                        color="crimson", va="bottom")
    ax.set_xlabel(f"latency (ms){' on ' + device if device else ''}")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
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
