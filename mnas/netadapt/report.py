"""A NetAdapt run as data (:func:`path_table`) and as a picture (:func:`plot_path`).

Compute first, draw second: the plot only draws what the tables return.
"""

from __future__ import annotations

from pathlib import Path

from mnas.errors import MnasError
from mnas.plots import save_figure


def _read(run_dir: str | Path):
    path = Path(run_dir) / "path.csv"
    if not path.is_file():
        raise MnasError(f"{run_dir}: no path.csv here; give the folder of a `mnas netadapt` run")
    from mnas.io import read_table_file

    df = read_table_file(path, "NetAdapt path table",  # a damaged file or another table: one line naming it
                         required=("step", "kind", "chosen", "latency_ms", "top1"))
    df["chosen"] = df["chosen"].astype(bool)
    return df


def proposals_table(run_dir: str | Path):
    """Every evaluated row of the run (seed, each step's proposals, final), as written."""
    return _read(run_dir)


def path_table(run_dir: str | Path):
    """The path: one row per finished step (the seed as step 0, the chosen proposal of each step, the
    final fine-tune if any), with the running change against the seed (``latency_saved_ms``,
    ``latency_frac`` of the seed's, ``top1_change``) and how many proposals each step weighed."""
    df = _read(run_dir)
    counts = df.groupby("step").size().rename("proposals")
    path = df[df["chosen"]].drop_duplicates("step", keep="last").sort_values("step").reset_index(drop=True)
    path = path.join(counts, on="step")
    seed_lat, seed_top1 = float(path["latency_ms"].iloc[0]), float(path["top1"].iloc[0])
    path["latency_saved_ms"] = seed_lat - path["latency_ms"]
    path["latency_frac"] = path["latency_ms"] / seed_lat
    path["top1_change"] = path["top1"] - seed_top1
    cols = ["step", "kind", "proposal", "layers", "channels_before", "channels_after", "latency_ms",
            "latency_saved_ms", "latency_frac", "top1", "top1_change", "proposals", "cost_s", "arch"]
    return path[cols]


def path_ylabel(evaluator: str) -> str:
    """What a NetAdapt path's accuracy is: measured after fine-tuning, or another evaluator's score."""
    from mnas.plots import accuracy_label

    return "validation top-1 (%) after fine-tuning" if evaluator == "finetune" else accuracy_label(evaluator)


def plot_path(run_dir: str | Path, out_png: str | Path, target_ms: float | None = None) -> Path:
    """Accuracy against predicted latency along the path (every proposal in grey), saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    everything, path = _read(run_dir), path_table(run_dir)
    cfg_data: dict = {}
    cfg = run_dir / "config.yaml"
    if cfg.is_file():
        import yaml

        loaded = yaml.safe_load(cfg.read_text())
        cfg_data = loaded if isinstance(loaded, dict) else {}
    if target_ms is None:
        target_ms = cfg_data.get("target_ms")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=100)
    others = everything[~everything["chosen"]]
    ax.scatter(others["latency_ms"], others["top1"], s=9, c="0.75", label="proposals", zorder=1)
    steps = path[path["kind"] != "final"]
    ax.plot(steps["latency_ms"], steps["top1"], "-o", ms=4, c="C0", label="chosen path", zorder=2)
    for _, r in steps.iterrows():
        ax.annotate(str(int(r["step"])), (r["latency_ms"], r["top1"]), textcoords="offset points", xytext=(3, 4),
                    fontsize=7, color="C0")
    final = path[path["kind"] == "final"]
    if len(final):
        ax.scatter(final["latency_ms"], final["top1"], marker="*", s=120, c="C3", label="after final fine-tune", zorder=3)
    if target_ms:
        ax.axvline(float(target_ms), ls="--", c="C2", lw=1, label=f"target {float(target_ms):g} ms")
    ax.set_xlabel("predicted latency (ms)")
    ax.set_ylabel(path_ylabel(cfg_data.get("evaluator", "finetune")))
    ax.set_title(f"NetAdapt path: {run_dir.name}")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save_figure(fig, out_png)
