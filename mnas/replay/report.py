"""A replay's results as data (the path, the references), a plot of them, and the Markdown report.

Compute first, draw second: :func:`replay_points` and :func:`reference_points` return the plot's
data; :func:`plot_replay` only draws them; :func:`render_report` only formats.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mnas.arch import load_network, parse_network
from mnas.errors import MnasError
from mnas.plots import REFERENCE_LABELS, accuracy_label, published_top1, save_figure  # noqa: F401  (published_top1: re-exported)
from mnas.replay.config import V3_SMALL_REWARD
from mnas.replay.diff import agreement, side_by_side


def _acc_label(ev: str) -> str:
    return accuracy_label(ev)


def _float(x) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _plain(x):
    if hasattr(x, "item"):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


# ---------------------------------------------------------------------------------------------- compute (plot data)
def replay_points(run_dir: str | Path):
    """The replayed path as a table: one row per network along the way (search best, NetAdapt's chosen steps,
    each applied redesign step), with ``phase``, ``label``, ``latency_ms``, ``top1``, ``madds``, ``params``, ``arch``."""
    import pandas as pd

    from mnas.counting import count

    run_dir = Path(run_dir)
    rows = []
    search = run_dir / "search.json"
    if search.is_file():
        s = json.loads(search.read_text())
        rows.append({"phase": "search", "label": "search best", "latency_ms": s["latency_ms"], "top1": s["top1"],
                     "arch": s["arch"]})
    na_dir = run_dir / "netadapt"
    if (na_dir / "path.csv").is_file():
        from mnas.netadapt.report import path_table

        path = path_table(na_dir)
        path = path[path["kind"] != "final"]
        for _, r in path.iterrows():
            if rows and r["kind"] == "seed" and rows[-1]["arch"] == r["arch"]:
                continue  # the search best seeded NetAdapt: one point
            label = "seed" if r["kind"] == "seed" else f"NetAdapt {int(r['step'])}"
            rows.append({"phase": "netadapt", "label": label, "latency_ms": float(r["latency_ms"]),
                         "top1": float(r["top1"]), "arch": str(r["arch"])})
    else:
        na = json.loads((run_dir / "netadapt.json").read_text()) if (run_dir / "netadapt.json").is_file() else None
        if na is not None and not rows:
            rows.append({"phase": "netadapt", "label": "seed", "latency_ms": na["latency_ms"], "top1": math.nan,
                         "arch": na["arch"]})
    red = run_dir / "redesign.csv"
    if red.is_file():
        df = pd.read_csv(red)
        for _, r in df[df["applied"].astype(bool)].iterrows():
            rows.append({"phase": "redesign", "label": str(r["step"]), "latency_ms": float(r["latency_ms"]),
                         "top1": float(r["top1"]), "arch": str(r["arch"])})
    if not rows:
        raise MnasError(f"{run_dir}: no replay phase has finished here (no search.json, netadapt/ or redesign.csv)")
    for row in rows:
        c = count(parse_network(row["arch"]))
        row["madds"], row["params"] = c.madds, c.params
    cols = ["phase", "label", "latency_ms", "top1", "madds", "params", "arch"]
    return pd.DataFrame(rows, columns=cols)


def reference_points(run_dir: str | Path):
    """The published networks at their latency under the same evaluator (``references.csv``)."""
    import pandas as pd

    path = Path(run_dir) / "references.csv"
    if not path.is_file():
        raise MnasError(f"{run_dir}: no references.csv (the replay's references phase has not finished)")
    return pd.read_csv(path)


# ---------------------------------------------------------------------------------------------- draw
_REF_LABEL = REFERENCE_LABELS
_REF_MARK = {"mobilenet_v3_large": "*", "mobilenet_v3_small": "*", "mobilenet_v2": "s", "mnasnet_a1": "D"}


def replay_labels(points) -> list[tuple[float, float, str]]:
    """The text labels of a replay plot: one per position, naming every step that sits there
    (a redesign step that leaves latency and accuracy unchanged shares its point with the one before)."""
    out: dict[tuple[float, float], list[str]] = {}
    for _, r in points[points["phase"] != "netadapt"].iterrows():
        out.setdefault((round(float(r["latency_ms"]), 3), round(float(r["top1"]), 3)), []).append(str(r["label"]))
    return [(x, y, ", ".join(dict.fromkeys(names))) for (x, y), names in out.items()]


def plot_replay(points, refs, out_png: str | Path, title: str = "replay", evaluator: str | None = None) -> Path:
    """Accuracy against latency: the replayed path (coloured by phase) and the published networks
    (scored by the same evaluator, filled; their published top-1 hollow where ``refs`` has it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.6, 4.6), dpi=100)
    ax.plot(points["latency_ms"], points["top1"], "-", c="0.6", lw=1, zorder=1)
    for i, (phase, grp) in enumerate(points.groupby("phase", sort=False)):
        ax.scatter(grp["latency_ms"], grp["top1"], s=22, c=f"C{i}", label=f"replay: {phase}", zorder=2)
    labels = replay_labels(points)
    allx = list(points["latency_ms"]) + list(refs["latency_ms"])
    ally = list(points["top1"]) + list(refs["top1"])
    span_x, span_y = (max(allx) - min(allx)) or 1.0, (max(ally) - min(ally)) or 1.0
    for x, y, text in labels:
        # a label goes right of its point unless another labelled point sits close on its right
        crowded = any(0 < x2 - x < 0.15 * span_x and abs(y2 - y) < 0.05 * span_y for x2, y2, _ in labels)
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(-6 if crowded else 6, 0),
                    va="center", ha="right" if crowded else "left", fontsize=7)
    ref_archs = set(refs["arch"]) if "arch" in refs else set()
    first, last = points.iloc[0], points.iloc[-1]
    xs = list(points["latency_ms"]) + list(refs["latency_ms"])
    near = abs(first["latency_ms"] - last["latency_ms"]) < 0.05 * (max(xs) - min(xs) or 1.0)
    for k, lab in ((0, "start"), (len(points) - 1, "replayed")):
        if k == 0 and near and len(points) > 1:
            continue  # the start sits under the replayed point: one label
        r = points.iloc[k]
        if r["arch"] in ref_archs:  # the seed is a published network: its own label says it
            continue
        ax.annotate(lab, (r["latency_ms"], r["top1"]), textcoords="offset points", xytext=(0, 9), fontsize=8,
                    weight="bold", ha="center")
    for _, r in refs.iterrows():
        name = _REF_LABEL.get(r["name"], r["name"])
        ax.scatter([r["latency_ms"]], [r["top1"]], marker=_REF_MARK.get(r["name"], "o"), s=90, c="k", zorder=3,
                   label=f"{name} (same evaluator)")
        pub = r.get("published_top1")
        if pub is not None and pub == pub:  # not NaN
            ax.scatter([r["latency_ms"]], [pub], marker=_REF_MARK.get(r["name"], "o"), s=90, facecolors="none",
                       edgecolors="k", zorder=3)
            ax.plot([r["latency_ms"]] * 2, [r["top1"], pub], ":", c="k", lw=0.7, zorder=2)
        at_right = r["latency_ms"] > min(allx) + 0.8 * span_x  # near the right edge: label to the left
        ax.annotate(name, (r["latency_ms"], r["top1"]), textcoords="offset points", xytext=(-6 if at_right else 5, 4),
                    ha="right" if at_right else "left", fontsize=8)
    if "published_top1" in refs and refs["published_top1"].notna().any():
        ax.scatter([], [], marker="o", s=60, facecolors="none", edgecolors="k", label="hollow: published top-1")
    ax.margins(x=0.1, y=0.08)
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(accuracy_label(evaluator) if evaluator else "top-1 (%) under the replay's evaluator")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    # outside the axes: a legend inside covered a reference's marker
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return save_figure(fig, out_png)


# ---------------------------------------------------------------------------------------------- report
def _fmt(x, spec: str = ".2f", none: str = "n/a") -> str:
    v = _float(x)
    return none if v is None else format(v, spec)


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def render_report(run: Any, summary: dict, points, refs) -> str:
    """The Markdown report of ``run`` (a :class:`mnas.replay.phases.Replay` whose phases have finished)."""
    import pandas as pd

    c = run.config
    dev = run.predictor.device
    ev = c.evaluator
    red = pd.read_csv(run.phase_path("redesign"), keep_default_na=False, na_values=[""])
    na = json.loads(run.phase_path("netadapt").read_text())
    final = load_network(run.dir / "final.yaml")
    pub = run.published()
    timings = summary["wall_s"]
    out = [f"# Replay: MobileNetV3-{c.replay.split('-')[1].capitalize()} on `{dev}`", ""]
    out.append(f"Budget `{c.budget}`, accuracy from the `{ev}` evaluator, latency predicted from the `{dev}` table. "
               f"Wall time {sum(timings.values()):.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ").")
    out.append("")
    out.append("## Phases")
    out.append("")
    if "search" in summary:
        s = summary["search"]
        out.append(f"1. **Block-wise search** over `{c.space}`, reward `{V3_SMALL_REWARD}` (w = −0.15, target "
                   f"{c.search_target_ms:g} ms), strategy `{c.strategy}`, {c.trials} trials: best "
                   f"{_fmt(s.get('latency_ms'))} ms, top-1 {_fmt(s.get('top1'))} %.")
    seed = "the search's best" if c.replay == "v3-small" else "MnasNet-A1"
    if na.get("skipped"):
        out.append(f"1. **NetAdapt** skipped: {na['note']}.")
    else:
        out.append(f"1. **NetAdapt** from {seed} ({_fmt(na.get('seed_latency_ms'))} ms) to the published "
                   f"{_REF_LABEL[c.published]}'s {_fmt(na.get('target_ms'))} ms on `{dev}`, δ = {c.delta:g} × seed "
                   f"latency: {na.get('steps')} steps, {_fmt(na.get('latency_ms'))} ms, top-1 "
                   f"{_fmt(na.get('seed_top1'))} → {_fmt(na.get('top1'))} %.")
    out.append("1. **Manual redesign** (MobileNetV3 Sec. 5.3), one step at a time:")
    out.append("")
    rows = []
    for _, r in red.iterrows():
        paper = []
        if _float(r["paper_ms"]) is not None:
            paper.append(f"{float(r['paper_ms']):+g} ms")
        if _float(r["paper_madds_m"]) is not None:
            paper.append(f"{float(r['paper_madds_m']):+g} M")
        if bool(r["applied"]):
            rows.append([r["step"], r["description"], f"{float(r['delta_ms']):+.2f}", f"{int(r['delta_madds']) / 1e6:+.1f}",
                         f"{int(r['delta_params']) / 1e6:+.3f}", _fmt(r["delta_top1"], "+.2f"), ", ".join(paper) or "–",
                         f"{float(r['latency_ms']):.2f}"])
        else:
            rows.append([r["step"], r["description"], "skipped", "", "", "", ", ".join(paper) or "–",
                         f"not applied: {r['skipped_because']}"])
    out.append(_md_table(["step", "what", "Δ latency (ms)", "Δ madds (M)", "Δ params (M)", "Δ top-1", "paper",
                          "latency after (ms)"], rows))
    out.append("")
    out.append("## Replayed vs published")
    out.append("")
    f, p = summary["found"], summary["published"]
    out.append(_md_table(["", "params (M)", "multiply-adds (M)", f"{dev} latency (ms)", _acc_label(ev)], [
        ["replayed", f"{f['params'] / 1e6:.2f}", f"{f['madds'] / 1e6:.1f}", f"{f['latency_ms']:.2f}", _fmt(f["top1"])],
        [_REF_LABEL[c.published] + " (published)", f"{p['params'] / 1e6:.2f}", f"{p['madds'] / 1e6:.1f}",
         f"{p['latency_ms']:.2f}", _fmt(p["top1"])],
    ]))
    gap = f["latency_ms"] - p["latency_ms"]
    if abs(gap) >= 0.05 * p["latency_ms"]:
        out.append("")
        why = ("the search's best was already below NetAdapt's target (with α = β = −0.15 the reward keeps paying "
               "for lower latency below the target, at the accuracy exchange rate the evaluator sets), so NetAdapt "
               "had nothing to do" if na.get("skipped") else
               "NetAdapt stops at the target, and the redesign steps after it change latency again")
        out.append(f"The replayed network is {abs(gap):.1f} ms {'faster' if gap < 0 else 'slower'} than the published "
                   f"one: {why} (choose NetAdapt's target with `--target-ms` to land elsewhere).")
    out.append("")
    out.append("![latency–accuracy](replay.png)")
    out.append("")
    out.append("References under the same evaluator and latency table:")
    out.append("")
    pub_col = "published_top1" in refs
    out.append(_md_table(["network", "params (M)", "multiply-adds (M)", f"{dev} latency (ms)", _acc_label(ev)]
                         + (["published ImageNet top-1, %"] if pub_col else []),
                         [[_REF_LABEL.get(r["name"], r["name"]), f"{r['params'] / 1e6:.2f}", f"{r['madds'] / 1e6:.1f}",
                           f"{r['latency_ms']:.2f}", _fmt(r["top1"])] + ([_fmt(r["published_top1"], ".1f")] if pub_col else [])
                          for _, r in refs.iterrows()]))
    m = getattr(run.evaluator, "model", None)
    if ev == "imagenet" and m is not None:
        v = m.validation
        out.append("")
        out.append(f"The `imagenet` evaluator is an estimate (`{m.name}`), not a training run: leave-one-family-out "
                   f"on published networks it errs by {v['mae_pp']:.2f} pp on average (Kendall τ {v['kendall_tau']:.3f}); "
                   "it credits capacity (multiply-adds, parameters, resolution), 5×5 kernels, squeeze-excite and depth, "
                   "and is neutral about activations (see `experiments/results/imagenet_estimate.md`).")
    notes = [r for _, r in refs.iterrows() if isinstance(r.get("note"), str) and r["note"]]
    for r in notes:
        out.append(f"\n- {r['name']}: {r['note']}")
    out.append("")
    ag = agreement(final, pub)
    out.append("### Block by block (✱ = differs from the published row)")
    out.append("")
    out.append(f"{ag['blocks_found']} blocks replayed, {ag['blocks_published']} published; of the {ag['compared']} "
               "compared by position, the published value is matched in: "
               + ", ".join(f"{k} {ag[k]}/{ag['compared']}" for k in ("kernel", "exp", "out", "se", "nl", "stride"))
               + f"; stem {'matches' if ag['stem'] else 'differs'}, head {'matches' if ag['head'] else 'differs'}.")
    out.append("")
    trows = []
    for r in side_by_side(final, pub):
        a, b = r["found"], r["published"]
        trows.append([r["row"], a["input"], a["operator"], a["exp"], a["out"], a["se"], a["nl"], a["stride"],
                      "" if r["same"] else "✱", b["input"], b["operator"], b["exp"], b["out"], b["se"], b["nl"], b["stride"]])
    out.append(_md_table(["#", "input", "operator", "exp", "#out", "SE", "NL", "s", "",
                          "input", "operator", "exp", "#out", "SE", "NL", "s"], trows))
    out.append("")
    out.append(f"Replayed: `{final}`  ")
    out.append(f"Published: `{pub}`")
    out.append("")
    out.append("Data: `path.csv` (the path), `redesign.csv`, `references.csv`, "
               + ("`search/`, " if c.replay == "v3-small" else "") + "`netadapt/path.csv`.")
    return "\n".join(out) + "\n"
