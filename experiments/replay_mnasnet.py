"""Regenerate experiments/results/replay_mnasnet*/: both variants of `mnas replay mnasnet` at MnasNet's budget.

    nice -n 10 python experiments/replay_mnasnet.py [--trials 8000] [--variants mnasnet,efficientnet]

Runs each variant into ``runs/replay-mnasnet-<variant>`` (resumable: rerun after a kill) and copies
what is worth committing — ``report.md``, ``summary.json``, ``pareto.png``, the search's
``config.yaml`` and its top networks — to ``experiments/results/replay_mnasnet`` (the MnasNet
variant) and ``experiments/results/replay_mnasnet_efficientnet``. The trials themselves
(``trials.csv``/``.journal``, several MB) stay in the run folder.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnas.replay.mnasnet import ReplayMnasnetConfig, run_replay_mnasnet  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8000)
    ap.add_argument("--variants", default="mnasnet,efficientnet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", default=str(REPO / "runs"), help="where the run folders go")
    args = ap.parse_args()
    for variant in args.variants.split(","):
        run = Path(args.runs) / f"replay-mnasnet-{variant}"
        summary = run_replay_mnasnet(ReplayMnasnetConfig(variant=variant, trials=args.trials, seed=args.seed), run)
        dest = REPO / "experiments" / "results" / ("replay_mnasnet" if variant == "mnasnet" else f"replay_mnasnet_{variant}")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name in ("report.md", "pareto.png"):
            shutil.copy2(run / name, dest / name)
        import json

        saved = json.loads((run / "summary.json").read_text())
        try:  # the run folder as the command line would name it, not this machine's absolute path
            saved["search_run"] = str(Path(saved["search_run"]).resolve().relative_to(REPO))
        except ValueError:
            pass
        (dest / "summary.json").write_text(json.dumps(saved, indent=2, allow_nan=False) + "\n")
        shutil.copy2(run / "search" / "config.yaml", dest / "search_config.yaml")
        shutil.copytree(run / "search" / "top", dest / "top")
        f = summary["networks"]["found"]
        print(f"{variant}: found {f['code']} surrogate {f['surrogate_top1']:.2f} % at {f['latency']:.1f} "
              f"{summary['unit']} in {summary['search_wall_s']:.0f} s -> {dest.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
