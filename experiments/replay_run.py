"""Run both MobileNetV3 replays and copy their reports to experiments/results/replay_v3_{large,small}/.

    nice python experiments/replay_run.py --budget default            # both, as in the README
    nice python experiments/replay_run.py --budget smoke --only v3-large

Same as ``mnas replay NAME --budget B --out runs/replay-NAME-B``, then copies the
reports. A killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from mnas.replay import ReplayConfig, run_replay  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", default="default", choices=("smoke", "default", "paper"))
    ap.add_argument("--only", choices=("v3-large", "v3-small"), help="run one replay only")
    ap.add_argument("--evaluator", default=None, help="accuracy signal (default: the budget's)")
    ap.add_argument("--trials", type=int, default=None, help="search trials of v3-small (default: the budget's)")
    ap.add_argument("--runs", type=Path, default=REPO / "runs", help="where the run folders go")
    ap.add_argument("--results", type=Path, default=HERE / "results", help="where report.md + PNG are copied")
    args = ap.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    for name in ([args.only] if args.only else ["v3-large", "v3-small"]):
        given = {k: v for k, v in (("evaluator", args.evaluator), ("trials", args.trials)) if v is not None}
        cfg = ReplayConfig(name, budget=args.budget, **given)
        out = args.runs / (f"replay-{name}-{args.budget}" + (f"-{args.trials}" if args.trials else ""))
        t0 = time.perf_counter()
        summary = run_replay(cfg, out)
        print(f"{name}: {time.perf_counter() - t0:.0f} s this call; phases {json.dumps(summary['wall_s'])}", flush=True)
        dest = args.results / f"replay_{name.replace('-', '_')}"
        dest.mkdir(parents=True, exist_ok=True)
        for f in ("report.md", "replay.png"):
            shutil.copy2(out / f, dest / f)
        (dest / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        print(f"  -> {dest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
