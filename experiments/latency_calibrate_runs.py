"""Three `mnas latency calibrate` runs in a row per (space, engine), each a fresh table, and their table.

    python experiments/latency_calibrate_runs.py run [--runs 3] [--configs v3_small:onnxruntime,...] [--cpu 1]
    python experiments/latency_calibrate_runs.py report [--work runs/latency_calibrate]

``run`` calls ``mnas latency calibrate --device epyc-<engine>-<space>-run<i> --engine E --space S --json``
for each configuration, one after the other (pinned to ``--cpu`` with ``taskset`` where it exists), and
keeps each run's JSON in ``experiments/results/latency_calibrate_runs/``. ``report`` reads those JSONs
(and each run's ``networks.csv`` for the ground truth's retest) and prints the Markdown table of the
README: MAPE, within ±10 %, Kendall τ of the calibrated table, the multiply-adds line of the same run,
the ground truth against itself (minimum of rounds 0, 2, 4 against rounds 1, 3), the rounds' spread
and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "experiments" / "results" / "latency_calibrate_runs"
CONFIGS = "v3_small:onnxruntime,v3_large:onnxruntime,v3_small:torch,v3_large:torch"


def name_of(space: str, engine: str, run: int, prefix: str) -> str:
    return f"{prefix}-{engine}-{space}-run{run}"


def run(args) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for cfg in args.configs.split(","):
        space, engine = cfg.split(":")
        for i in range(1, args.runs + 1):
            name = name_of(space, engine, i, args.prefix)
            dest = OUT / f"{name}.json"
            if dest.exists():
                continue  # resumable: a finished run is kept
            cmd = [sys.executable, "-m", "mnas", "latency", "calibrate", "--device", name, "--engine", engine,
                   "--space", space, "--json"]
            if args.cpu is not None and shutil.which("taskset"):
                cmd = ["taskset", "-c", str(args.cpu), *cmd]
            load0, t0 = os.getloadavg()[0], time.time()
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return out.returncode
            res = json.loads(out.stdout)
            res["load_before"], res["wall_total_s"] = round(load0, 2), round(time.time() - t0, 1)
            work = Path(res["work"]) if Path(res["work"]).is_absolute() else REPO / res["work"]
            shutil.copy(work / "networks.csv", OUT / f"{name}.networks.csv")
            dest.write_text(json.dumps(res, indent=2) + "\n")
            print(f"{name}: MAPE {res['mape']:.2f} %, ±10 % {res['within_10'] * 100:.0f} %, τ {res['kendall_tau']:.3f}",
                  flush=True)
    return 0


def report(args) -> int:
    import pandas as pd

    from mnas.latency.validate import retest

    files = [f for f in sorted(Path(args.results).glob("*.json")) if f.stat().st_size > 0]  # finished runs
    print("| space | engine | run | MAPE | ±10 % | τ | multiply-adds line: MAPE / ±10 % / τ | ground truth vs itself: MAPE / τ "
          "| rounds' spread | load | wall | target met |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    order = {c: i for i, c in enumerate(CONFIGS.split(","))}
    rows = []
    for f in files:
        r = json.loads(f.read_text())
        space, engine = r["spaces"][0], r["engine"].split()[0]
        v = r["validation"]
        rt = v.get("ground_truth_retest")
        if rt is None:  # from the run's own per-round measurements
            work = f.with_name(f"{r['device']}.networks.csv")  # kept beside the JSON by `run`
            if not work.is_file():
                work = Path(args.work) / r["device"] / "networks.csv"
            if work.is_file():
                d = pd.read_csv(work)
                d = d[d["set"] == "validation"]
                rt = retest(d[[c for c in d if c.startswith("round")]].to_numpy())
        met = r["mape"] <= 5 and r["within_10"] >= 0.9 and r["kendall_tau"] >= 0.9
        rows.append((order.get(f"{space}:{engine}", 9), r["device"], space, engine, r, v, rt, met))
    for _, dev, space, engine, r, v, rt, met in sorted(rows):
        m = v["madds_proxy"]
        rts = f"{rt['mape']:.2f} % / {rt['kendall_tau']:.3f}" if rt else "–"
        print(f"| {space} | {engine} | {dev.rsplit('run', 1)[-1]} | {r['mape']:.2f} % | {r['within_10'] * 100:.0f} % | "
              f"{r['kendall_tau']:.3f} | {m['mape']:.2f} % / {m['within_10'] * 100:.0f} % / {m['kendall_tau']:.3f} | {rts} | "
              f"{v['round_spread_pct']:.1f} % | {r.get('uptime_load', '')} | {r.get('wall_s', {}).get('total', 0) / 60:.1f} min | "
              f"{'yes' if met else 'no'} |")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=("run", "report"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--configs", default=CONFIGS)
    ap.add_argument("--prefix", default="epyc")
    ap.add_argument("--cpu", type=int, default=None, help="pin each run to this CPU (taskset)")
    ap.add_argument("--results", default=str(OUT))
    ap.add_argument("--work", default=str(REPO / "runs" / "latency_calibrate"))
    args = ap.parse_args(argv)
    return run(args) if args.action == "run" else report(args)


if __name__ == "__main__":
    sys.exit(main())
