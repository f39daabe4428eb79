"""Search-loop throughput: trials/s of the default storage vs Optuna's in-memory storage vs the sequential loop.

    python benchmarks/bench_search_throughput.py [--trials 8000] [--baseline-trials 400]
        [--space anb --evaluator anb --device pixel1 --target-ms 40] [--strategy evolution] [--json]

Runs the same search (same space, evaluator, device, reward, strategy and seed) three ways
through ``mnas.search.runner.run_search``, each in a fresh run folder, and times each
end to end (build, search, export of trials.csv/.parquet, top networks; no plot):

- ``default``  — what ``mnas search`` does: rounds on an in-memory study, each round stored
  in the run's journal file (``trials.journal``; crash-safe, resumable);
- ``memory``   — ``storage: memory``: the same loop with nothing stored (Optuna's in-memory
  storage, the ceiling of this loop; not resumable);
- ``ray``      — ``--backend ray``: the same rounds, each split into Ray tasks of many
  architectures (rounds of at least 64; Ray's start-up is timed separately);
- ``sequential`` — the loop before this benchmark existed: Optuna's ``study.optimize`` on
  the SQLite file, one trial and one commit per parameter at a time (``--storage sqlite:///…``).
  It is slow, so it runs ``--baseline-trials`` trials (trials/s falls as a study grows, so
  the ratio against it is, if anything, flattering to it).

Prints trials/s and wall time per mode, the ratios, and the machine load (``os.getloadavg``)
before and after: the figure counts only on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnas.search.config import SearchConfig  # noqa: E402
from mnas.search.runner import run_search  # noqa: E402


def timed(mode: str, trials: int, args, root: Path) -> dict:
    out = root / mode
    shutil.rmtree(out, ignore_errors=True)
    storage = {"default": None, "memory": "memory", "ray": None,
               "sequential": f"sqlite:///{(root / 'sequential.db').resolve()}"}[mode]
    if mode == "sequential":
        (root / "sequential.db").unlink(missing_ok=True)
    cfg = SearchConfig(target_ms=args.target_ms, space=args.space, evaluator=args.evaluator, device=args.device,
                       strategy=args.strategy, trials=trials, reward=args.reward, seed=args.seed, out=str(out),
                       storage=storage, backend="ray" if mode == "ray" else "local")
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    res = run_search(cfg, progress=args.progress, plot=False, log=lambda m: None)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stored = [p.name for p in out.iterdir() if p.name in ("trials.journal", "trials.db")] + (
        ["sequential.db"] if mode == "sequential" else [])
    return {"mode": mode, "trials": res.completed, "wall_s": wall, "cpu_s": cpu, "trials_per_s": res.completed / wall,
            "best_reward": float(res.top[0]["reward"]) if res.top else None, "stored_in": stored}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=8000)
    ap.add_argument("--baseline-trials", type=int, default=400, help="trials of the slow sequential loop")
    ap.add_argument("--space", default="anb")
    ap.add_argument("--evaluator", default="anb")
    ap.add_argument("--device", default="pixel1")
    ap.add_argument("--target-ms", type=float, default=40.0)
    ap.add_argument("--reward", default="soft")
    ap.add_argument("--strategy", default="evolution")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--modes", default="default,memory,sequential,ray")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import warnings

    warnings.simplefilter("ignore")
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mnas-bench-") as tmp:
        ray_start = None
    if "ray" in args.modes.split(","):
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
    for mode in args.modes.split(","):
            n = args.baseline_trials if mode == "sequential" else args.trials
            rows.append(timed(mode, n, args, Path(tmp)))
            print(f"  {mode}: {rows[-1]['trials']} trials in {rows[-1]['wall_s']:.1f} s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()
    by = {r["mode"]: r for r in rows}
    ref = by.get("default")
    for r in rows:
        r["vs_default"] = r["trials_per_s"] / ref["trials_per_s"] if ref else None
    summary = {"space": args.space, "evaluator": args.evaluator, "device": args.device, "strategy": args.strategy,
               "target_ms": args.target_ms, "reward": args.reward, "cpus": os.cpu_count(),
               "loadavg_before": load_before, "loadavg_after": load_after, "ray_start_s": ray_start, "rows": rows}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"search throughput: {args.space} / {args.evaluator} / {args.device} / {args.strategy}, "
          f"target {args.target_ms:g} ms, {os.cpu_count()} CPUs, load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after")
    print(f"{'mode':<11} {'trials':>7} {'wall s':>8} {'cpu s':>7} {'trials/s':>9} {'vs default':>11}  stored in")
    for r in rows:
        print(f"{r['mode']:<11} {r['trials']:>7} {r['wall_s']:>8.1f} {r['cpu_s']:>7.1f} {r['trials_per_s']:>9.1f} "
              f"{r['vs_default']:>10.2f}x  {', '.join(r['stored_in']) or '-'}")
    if ray_start is not None:
        print(f"ray: measurements in Ray tasks (rounds of >= 64 architectures, split over the workers); "
              f"Ray's start-up ({ray_start:.1f} s) is not included")
    if "default" in by and "sequential" in by:
        print(f"default / sequential: {by['default']['trials_per_s'] / by['sequential']['trials_per_s']:.1f}x; "
              f"default / memory (the ceiling): {by['default']['trials_per_s'] / by['memory']['trials_per_s']:.2f}"
              if "memory" in by else "")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
