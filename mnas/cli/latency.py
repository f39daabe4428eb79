"""`mnas latency list|predict|explain|profile|calibrate|validate|import-ofa`: per-device latency lookup tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mnas.cli.common import add_json_flag, print_json
from mnas.errors import MnasError


def register(sub) -> None:
    p = sub.add_parser("latency", help="latency lookup tables: list, predict, profile a device, validate, import")
    lsub = p.add_subparsers(dest="latency_command", metavar="ACTION", parser_class=type(p))

    pl = lsub.add_parser("list", help="available devices (shipped tables, ./latency_tables, $MNAS_LATENCY_TABLES)")
    add_json_flag(pl)
    pl.set_defaults(func=cmd_list)

    pp = lsub.add_parser("predict", help="predicted latency of NAME|FILE|text form on a device")
    pp.add_argument("arch", nargs="+", metavar="NAME|FILE")
    pp.add_argument("--device", required=True, help="device name (see `mnas latency list`) or a table file")
    pp.add_argument("--resolution", type=int, default=None)
    pp.add_argument("--classes", type=int, default=1000)
    pp.add_argument("--space", default=None, help="search space whose compact encodings NAME may be (e.g. anb)")
    pp.add_argument("--ops", action="store_true", help="also show every op's key and latency")
    add_json_flag(pp)
    pp.set_defaults(func=cmd_predict)

    pe = lsub.add_parser("explain", help="where a network's time goes: per-op latency and share on a device")
    pe.add_argument("arch", metavar="NAME|FILE", help="a zoo name, an architecture file or the text form")
    pe.add_argument("--device", required=True, help="device name (see `mnas latency list`) or a table file")
    pe.add_argument("--resolution", type=int, default=None)
    pe.add_argument("--classes", type=int, default=1000)
    pe.add_argument("--space", default=None, help="search space whose compact encodings NAME may be (e.g. anb)")
    pe.add_argument("--top", type=int, default=0, metavar="N", help="show only the N most expensive ops (default 0: all)")
    add_json_flag(pe)
    pe.set_defaults(func=cmd_explain)

    pr = lsub.add_parser("profile", help="measure every distinct op of a search space or of networks (resumable)")
    pr.add_argument("--device", required=True, help="name of the table to write (latency_tables/NAME.csv)")
    pr.add_argument("--engine", choices=("onnxruntime", "torch"), default="onnxruntime")
    src = pr.add_mutually_exclusive_group(required=True)
    src.add_argument("--space", nargs="+", metavar="FILE|NAME", help="search space(s): every op they can produce")
    src.add_argument("--arch", nargs="+", metavar="NAME|FILE", help="networks: their ops (`zoo` = all reference nets)")
    pr.add_argument("--resolutions", type=int, nargs="+", default=None, help="input resolutions (default: the space's/net's own)")
    pr.add_argument("--classes", type=int, default=1000, help="classifier outputs (default 1000)")
    pr.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    pr.add_argument("--budget", type=float, default=0.08, help="seconds of timed calls per op (default 0.08)")
    pr.add_argument("--stat", choices=("min", "median"), default="min",
                    help="statistic of the timed calls (default min: robust to other processes' load)")
    pr.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: the thread's CPU time, not counting preemption (default); wall: wall clock")
    pr.add_argument("--calibrate", type=int, default=8, metavar="N",
                    help="whole networks measured end to end to fit the correction (default 8; 0 = skip)")
    pr.add_argument("--limit", type=int, default=None, help="stop after measuring this many ops (resume later)")
    pr.add_argument("--remeasure", action="store_true",
                    help="measure every op again and keep the smaller minimum (refine a table taken under load)")
    pr.add_argument("--out", default=None, help="table file (default latency_tables/DEVICE.csv)")
    add_json_flag(pr)
    pr.set_defaults(func=cmd_profile)

    pc = lsub.add_parser("calibrate", help="build, calibrate and validate a table for this machine in one command "
                                           "(resumable)")
    pc.add_argument("--device", required=True, help="name of the table to write (latency_tables/NAME.csv)")
    pc.add_argument("--engine", choices=("onnxruntime", "torch"), required=True)
    pc.add_argument("--space", nargs="+", required=True, metavar="FILE|NAME", help="search space(s) to cover")
    pc.add_argument("--samples", type=int, default=100, help="random networks to validate on, split over the spaces "
                                                             "(default 100; seed 1)")
    pc.add_argument("--calibration", type=int, default=40, metavar="N",
                    help="random networks (seed 0) measured end to end to fit the composition (default 40)")
    pc.add_argument("--rounds", type=int, default=5, help="interleaved measuring rounds per network (default 5)")
    pc.add_argument("--budget", type=float, default=0.04, help="seconds of timed calls per op (default 0.04)")
    pc.add_argument("--threads", type=int, default=1, help="engine threads (default 1)")
    pc.add_argument("--protocol", choices=("interleaved", "sequential"), default="interleaved",
                    help="interleaved (default): calibration and validation networks timed in the same shuffled "
                         "rounds; sequential: calibration first, then validation")
    pc.add_argument("--out", default=None, help="table file (default latency_tables/DEVICE.csv)")
    pc.add_argument("--work", default=None, help="folder for the measurements (default runs/latency_calibrate/DEVICE)")
    add_json_flag(pc)
    pc.set_defaults(func=cmd_calibrate)

    pv = lsub.add_parser("validate", help="measure random networks end to end against the table's prediction")
    pv.add_argument("--device", required=True)
    pv.add_argument("--samples", type=int, default=50)
    pv.add_argument("--space", default=None, help="search space to sample (default: the table's first space)")
    pv.add_argument("--engine", choices=("onnxruntime", "torch"), default=None, help="default: the table's engine")
    pv.add_argument("--seed", type=int, default=1, help="sampling seed (calibration uses seed 0)")
    pv.add_argument("--rounds", type=int, default=8,
                    help="interleaved measuring rounds per network (default 8; raise it to resume with more)")
    pv.add_argument("--out", default=None, help="folder for the CSV and scatter PNG (default runs/latency_validate/DEVICE)")
    add_json_flag(pv)
    pv.set_defaults(func=cmd_validate)

    pi = lsub.add_parser("import-ofa", help="convert a Once-for-All YAML lookup table into an mnas table")
    pi.add_argument("yaml", help="OFA *_lookup_table.yaml, or a folder of them (one per resolution: keys get @rRES)")
    pi.add_argument("--device", required=True, help="name of the new table")
    pi.add_argument("--out", default=None, help="table file (default latency_tables/DEVICE.csv)")
    add_json_flag(pi)
    pi.set_defaults(func=cmd_import_ofa)
    p.set_defaults(func=lambda a: p.print_help())


# --------------------------------------------------------------------------- handlers

def cmd_list(args) -> int:
    from mnas.latency.table import available, load_table

    rows = []
    for name, path in available().items():
        t = load_table(path)
        a, b = t.correction
        from mnas.latency.pixel1_era import eras

        rows.append({"device": name, "ops": len(t), "engine": t.meta.get("engine", ""), "cpu": t.meta.get("cpu", ""),
                     "threads": t.meta.get("threads"), "correction_a": a, "correction_b": b, "path": str(path),
                     "eras": sorted(eras(t.meta))})
    from mnas.latency.surrogate import model_device_rows  # madds and Accel-NASBench's measured devices

    rows = [{**r, "kind": "lookup table"} for r in rows] + model_device_rows()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no latency tables found (measure one with `mnas latency profile`)")
        return 0
    w = max(len(r["device"]) for r in rows)
    we = max(len(str(r["engine"])) for r in rows)
    print(f"{'device':<{w}}  {'ops':>6}  {'engine':<{we}}  cpu / source")
    for r in rows:
        print(f"{r['device']:<{w}}  {r['ops']:>6}  {r['engine']:<{we}}  {r['cpu']}")
        if r.get("eras"):
            print(f"{'':<{w}}  {'':>6}  {'':<{we}}  eras (--device {r['device']}@ERA): {', '.join(r['eras'])}")
    return 0


def _space(name: str | None):
    """The search space ``--space`` names (its compact encodings are then accepted as NAME), or None."""
    if name is None:
        return None
    from mnas.space import load_space

    return load_space(name)


def cmd_predict(args) -> int:
    from mnas.latency import get_predictor
    from mnas.resolve import load_arch

    pred = get_predictor(args.device, num_classes=args.classes)
    space = _space(args.space)
    out = []
    for spec in args.arch:
        net = load_arch(spec, args.resolution, space)
        d = {"arch": spec, "resolution": net.resolution, "device": pred.device, "latency_ms": pred.predict(net)}
        if args.ops:
            d["ops"] = [{"key": k, "ms": v} for k, v in pred.op_breakdown(net)]
        out.append(d)
    if args.json:
        print_json(out if len(out) > 1 else out[0])
        return 0
    for d in out:
        print(f"{d['arch']} @ {d['resolution']}: {d['latency_ms']:.2f} ms on {d['device']} (predicted)")
        for op in d.get("ops", []):
            print(f"  {op['ms']:9.4f}  {op['key']}")
    return 0


def explain(net, pred) -> dict:
    """Per-op breakdown of ``net`` on ``pred``: key, kind, ms (with the table's correction spread over the ops), share."""
    from mnas.latency.keys import head_ops

    ops = pred.op_breakdown(net)
    listed = set(pred._ms)
    a, b = pred.table.correction
    total = pred.predict(net)
    names = ["stem" if la.index < 0 else f"block {la.index}" for la in net.layers()]
    names += [f"head {h.kind}" for h in head_ops(net, pred.num_classes)]
    rows = [{"position": n, "key": k, "ms": a * ms, "share": (a * ms) / total if total else 0.0,
             "source": "table" if k in listed else "model"} for n, (k, ms) in zip(names, ops)]
    return {"device": pred.device, "resolution": net.resolution, "latency_ms": total, "op_sum_ms": sum(ms for _, ms in ops),
            "correction": {"a": a, "b": b}, "ops": rows,
            "note": "ms = a * op ms; the correction's constant b is not spread over the ops"}


def cmd_explain(args) -> int:
    from mnas.latency import get_predictor
    from mnas.resolve import load_arch

    if args.top < 0:
        raise MnasError(f"--top must be >= 0, got {args.top}")
    pred = get_predictor(args.device, num_classes=args.classes)
    net = load_arch(args.arch, args.resolution, _space(args.space))
    res = {"arch": args.arch, **explain(net, pred)}
    rows = res["ops"]
    if args.top:
        rows = sorted(rows, key=lambda r: -r["ms"])[: args.top]
    if args.json:
        print_json({**res, "ops": rows})
        return 0
    print(f"{args.arch} @ {res['resolution']}: {res['latency_ms']:.2f} ms on {res['device']} (predicted)")
    wk = max([len(r["key"]) for r in rows] + [6])
    print(f"{'position':<11} {'op key':<{wk}} {'ms':>8} {'share':>6}  bar")
    for r in rows:
        bar = "#" * int(round(r["share"] * 50))
        flag = "  (priced by the model)" if r["source"] == "model" else ""
        print(f"{r['position']:<11} {r['key']:<{wk}} {r['ms']:>8.3f} {r['share'] * 100:>5.1f}%  {bar}{flag}")
    a, b = res["correction"]["a"], res["correction"]["b"]
    if (a, b) != (1.0, 0.0):
        print(f"correction: latency = {a:.4f} * op sum ({res['op_sum_ms']:.3f} ms) + {b:.4f} ms; "
              f"the constant {b:.3f} ms ({b / res['latency_ms'] * 100:.1f} %) belongs to no op")
    return 0


def _default_out(device: str, out: str | None) -> Path:
    if out:
        return Path(out)
    if any(c in device for c in "/\\") or device.startswith("."):
        raise MnasError(f"--device {device!r}: give a plain name (letters, digits, -, _); use --out for a path")
    return Path("latency_tables") / f"{device}.csv"


def _refuse_other_table(out: Path, command: str, same) -> None:
    """``out`` may be replaced only if it is missing or a table this command would write again (``same(meta)``):
    never a shipped table, another device's table or a file that is no table."""
    from mnas.latency.table import SHIPPED_DIR, load_table

    if not out.exists():
        return
    if out.resolve().parent == SHIPPED_DIR.resolve():
        raise MnasError(f"--out {out} is a table shipped with mnas; {command} does not replace it: give another --out "
                        "(or another --device)")
    try:
        meta = load_table(out).meta
    except MnasError:
        raise MnasError(f"--out {out} exists and is not a latency table; {command} does not replace it: give another "
                        "--out") from None
    if not same(meta):
        raise MnasError(f"--out {out} holds another table (device {meta.get('device')!r}, "
                        f"{meta.get('engine') or meta.get('source') or 'other source'}); {command} does not replace it: "
                        "give another --out, or delete the file")


def _nets_from_specs(specs: list[str], resolutions: list[int] | None):
    from mnas import zoo
    from mnas.resolve import load_arch

    names: list[str] = []
    for s in specs:
        names += zoo.names() if s == "zoo" else [s]
    nets, labels = [], []
    for s in names:
        for r in resolutions or [None]:
            net = load_arch(s, r)
            nets.append(net)
            labels.append(f"{s}@{net.resolution}")
    return nets, labels


def cmd_profile(args) -> int:
    from mnas.latency.profiler import ensure_malloc_env

    ensure_malloc_env()  # re-executes once with pinned glibc thresholds (no-op when already set)
    import random

    from mnas.latency import profiler

    out = _default_out(args.device, args.out)
    runner = profiler.Runner(args.engine, threads=args.threads, budget_s=args.budget, stat=args.stat, clock=args.clock)
    if args.space:  # every input resolved before the table file is made: a refused command writes nothing
        from mnas.space import load_space

        given = [load_space(spec) for spec in args.space]
    else:
        nets, labels = _nets_from_specs(args.arch, args.resolutions)
    table = profiler.open_table(out, args.device, runner)
    if args.space:
        ops, cal_nets, cal_names = [], [], []
        for sp in given:
            ops += profiler.space_ops(sp, args.resolutions, args.classes)
        # calibrate on the given spaces and on those calibrated before, so all points are measured together
        spaces = {sp.name: sp for sp in given}
        cal_spaces = set(spaces) | {n.split(":")[0] for n in (table.meta.get("correction") or {}).get("networks", [])}
        for name in cal_spaces - set(spaces):
            spaces[name] = load_space(name)
        for name in sorted(cal_spaces if args.calibrate else ()):
            sp, rng = spaces[name], random.Random(0)
            for i in range(args.calibrate):
                s = sp.sample(rng)
                cal_nets.append(sp.decode(s))
                cal_names.append(f"{sp.name}:{sp.encode_string(s)}")
        table.meta["spaces"] = sorted(set(table.meta.get("spaces", [])) | {sp.name for sp in given})
        table.save()
        ops = list({op.key: op for op in ops}.values())
    else:
        ops = profiler.distinct_ops(nets, num_classes=args.classes)
        step = max(1, len(nets) // max(1, args.calibrate)) if args.calibrate else 0
        cal_nets = nets[::step][: args.calibrate] if step else []
        cal_names = labels[::step][: args.calibrate] if step else []
    todo = len(ops) if args.remeasure else sum(op.key not in table for op in ops)
    sys.stderr.write(f"{out}: {len(ops)} distinct ops, {len(ops) - todo} already measured, {todo} to measure\n")
    measured = profiler.profile_ops(ops, table, runner, limit=args.limit, remeasure=args.remeasure)
    complete = all(op.key in table for op in ops)
    corr = None
    if complete and cal_nets:
        from mnas.latency.calibration import calibrate

        corr = calibrate(table, cal_nets, runner, names=cal_names, num_classes=args.classes)
    result = {"table": str(out), "device": args.device, "ops": len(ops), "measured_now": measured,
              "complete": complete, "correction": corr}
    if args.json:
        print_json(result)
    else:
        print(f"{out}: {measured} ops measured now, {len(table)} in the table"
              + ("" if complete else f"; {sum(op.key not in table for op in ops)} left (rerun to resume)"))
        if corr:
            print(f"correction: latency = {corr['a']:.4f} * sum + {corr['b']:.4f} ms "
                  f"(fitted on {corr['n']} networks; MAPE raw sum {corr['mape_raw_sum']:.1f} % -> {corr['mape_fit']:.1f} %)")
    return 0


def cmd_calibrate(args) -> int:
    from mnas.latency.profiler import ensure_malloc_env

    ensure_malloc_env()  # re-executes once with pinned glibc thresholds (no-op when already set)
    import random
    import time

    import numpy as np
    import pandas as pd

    from mnas.latency import profiler
    from mnas.latency.validate import error_stats, retest, scatter_plot
    from mnas.space import load_space

    for name, v, lo in (("--samples", args.samples, 2), ("--calibration", args.calibration, 2), ("--rounds", args.rounds, 1)):
        if v < lo:
            raise MnasError(f"{name} must be >= {lo}, got {v}")
    t0 = time.perf_counter()
    out = _default_out(args.device, args.out)
    work = Path(args.work or Path("runs") / "latency_calibrate" / args.device)
    spaces = list({sp.name: sp for sp in (load_space(s) for s in args.space)}.values())
    runner = profiler.Runner(args.engine, threads=args.threads, budget_s=args.budget)
    table = profiler.open_table(out, args.device, runner)  # resumes a table of this engine and this CPU
    say = (lambda msg: None) if args.json else (lambda msg: sys.stderr.write(msg + "\n"))

    # 1. every op the spaces can produce (appended one line at a time: a kill loses nothing)
    ops = list({op.key: op for sp in spaces for op in profiler.space_ops(sp)}.values())
    table.meta["spaces"] = sorted(set(table.meta.get("spaces", [])) | {sp.name for sp in spaces})
    table.save()
    todo = sum(op.key not in table for op in ops)
    say(f"[1/3] {out}: {len(ops)} distinct ops, {len(ops) - todo} already measured, {todo} to measure")
    measured_now = profiler.profile_ops(ops, table, runner)
    t_ops = time.perf_counter() - t0

    # 2.+3. whole networks end to end: calibration networks (seed 0) to fit the composition, validation networks
    # (seed 1) to judge it. Interleaved (default): both sets are timed in the same rounds, in a shuffled order, so a
    # change in the machine's load between calibrating and validating cannot masquerade as a model error.
    def split(n):
        return [n // len(spaces) + (i < n % len(spaces)) for i in range(len(spaces))]

    recs, nets = [], []
    for sp, ncal, nval in zip(spaces, split(args.calibration), split(args.samples)):
        for which, seed, n in (("calibration", 0, ncal), ("validation", 1, nval)):
            rng = random.Random(seed)
            for _ in range(n):
                smp = sp.sample(rng)
                nets.append(sp.decode(smp))
                recs.append({"space": sp.name, "set": which, "arch": sp.encode_string(smp)})
    df = pd.DataFrame(recs)
    from mnas.counting import count

    df["madds"] = [count(n).madds for n in nets]
    sums = [profiler.type_sums(table, n) for n in nets]
    df["op_sum_ms"] = [sum(t.values()) for t in sums]
    order = list(range(len(nets)))
    if args.protocol == "interleaved":
        random.Random(2).shuffle(order)
        groups = [order]
    else:  # sequential: all calibration rounds first, then all validation rounds (the older protocol)
        groups = [[i for i in order if recs[i]["set"] == w] for w in ("calibration", "validation")]
    say(f"[2/3] {args.calibration} calibration + {args.samples} validation networks end to end, {args.rounds} "
        f"rounds ({args.protocol})")
    csv_path = work / "networks.csv"
    work.mkdir(parents=True, exist_ok=True)
    measure_rounds(df, nets, groups, runner, args.rounds, csv_path, progress=not args.json)
    rcols = [f"round{r}_ms" for r in range(args.rounds)]
    df["measured_ms"] = df[rcols].min(axis=1)
    cal = (df["set"] == "calibration").to_numpy()
    corr = profiler.fit_composition([sums[i] for i in np.flatnonzero(cal)], df.loc[cal, "measured_ms"].to_numpy())
    names = [f"{r['space']}:{r['arch']}" for r in recs if r["set"] == "calibration"]
    corr.update({"rounds": args.rounds, "protocol": args.protocol, "networks": names,
                 "points_ms": [[round(float(a), 4), round(float(m), 4)] for a, m in
                               zip(df.loc[cal, "op_sum_ms"], df.loc[cal, "measured_ms"])]})
    table.meta["correction"] = corr
    table.save()
    t_cal = time.perf_counter() - t0 - t_ops

    say("[3/3] validation")
    from mnas.latency.predictor import Predictor

    pred = Predictor(table)
    df["predicted_ms"] = [pred.predict(n) for n in nets]
    df.to_csv(csv_path, index=False)
    val = df[~cal]

    def judge(v) -> dict:
        m = v["measured_ms"].to_numpy()
        c, d = np.polyfit(v["madds"], m, 1)
        ta, tb = np.polyfit(v["op_sum_ms"], m, 1)
        return {"table": error_stats(v["predicted_ms"], m), "table_uncorrected": error_stats(v["op_sum_ms"], m),
                "table_refit": error_stats(ta * v["op_sum_ms"] + tb, m), "madds_proxy": error_stats(c * v["madds"] + d, m),
                "round_spread_pct": float(np.median((v[rcols].max(axis=1) / v[rcols].min(axis=1) - 1) * 100)),
                "ground_truth_retest": retest(v[rcols].to_numpy())}

    pooled = judge(val)
    c, d = np.polyfit(val["madds"], val["measured_ms"], 1)
    scatter_plot(val.assign(madds_fit_ms=c * val["madds"] + d),
                 {"device": args.device, "engine": runner.describe(), "space": ", ".join(sp.name for sp in spaces),
                  "samples": int(len(val)), **pooled}, work / "scatter.png")
    per_space = {name: judge(v) for name, v in val.groupby("space")} if len(spaces) > 1 else {spaces[0].name: pooled}
    wall = time.perf_counter() - t0
    result = {
        "device": args.device, "table": str(out), "engine": runner.describe(), "cpu": table.meta.get("cpu"),
        "cpu_info": table.meta.get("cpu_info"), "spaces": [sp.name for sp in spaces], "ops": len(ops),
        "measured_now": measured_now, "correction": {k: v for k, v in corr.items() if k not in ("networks", "points_ms")},
        "samples": int(len(val)), "calibration_networks": int(cal.sum()), "rounds": args.rounds,
        "protocol": args.protocol, "uptime_load": _load(),
        "mape": pooled["table"]["mape"], "within_10": pooled["table"]["within_10"],
        "kendall_tau": pooled["table"]["kendall_tau"], "validation": pooled, "per_space": per_space,
        "wall_s": {"ops": round(t_ops, 1), "networks": round(t_cal, 1), "validation": round(wall - t_ops - t_cal, 1),
                   "total": round(wall, 1)},
        "work": str(work),
    }
    (work / "calibrate.json").write_text(json.dumps(result, indent=2) + "\n")
    if args.json:
        print_json(result)
        return 0
    print(f"{out}: {len(table)} ops ({measured_now} measured now) on {result['cpu']}, {runner.describe()}; "
          f"{wall / 60:.1f} min")
    print("composition: latency = " + " + ".join(f"{v:.3f}*{t}" for t, v in corr["per_type"].items())
          + f" {'-' if corr['b'] < 0 else '+'} {abs(corr['b']):.3f} ms (fitted on {corr['n']} networks: MAPE raw sum {corr['mape_raw_sum']:.1f} % -> "
          f"{corr['mape_fit']:.1f} %)")
    print(f"validation on {len(val)} other random networks ({', '.join(result['spaces'])}), {args.rounds} rounds:")
    print(f"  {'predictor':<34} {'MAPE':>7} {'±10 %':>6} {'Kendall τ':>9}")
    rows = [("all", "lookup table (calibrated)", pooled["table"]), ("all", "lookup table (raw op sum)",
            pooled["table_uncorrected"]), ("all", "op sum, linear fit on this set", pooled["table_refit"]),
            ("all", "multiply-adds, fit on this set", pooled["madds_proxy"])]
    if len(spaces) > 1:
        for name, r in per_space.items():
            rows += [(name, f"{name}: lookup table", r["table"]), (name, f"{name}: multiply-adds", r["madds_proxy"])]
    for _, label, st in rows:
        print(f"  {label:<34} {st['mape']:>6.2f}% {st['within_10'] * 100:>5.0f}% {st['kendall_tau']:>9.3f}")
    print(f"measurement repeatability: a network's rounds differ by {pooled['round_spread_pct']:.1f} % (median max/min"
          f" - 1); load average {result['uptime_load']}")
    if pooled["ground_truth_retest"]:
        rt = pooled["ground_truth_retest"]
        print(f"ground truth against itself (min of even vs odd rounds): MAPE {rt['mape']:.2f} %, ±10 % "
              f"{rt['within_10'] * 100:.0f} %, τ {rt['kendall_tau']:.3f} (the most any predictor can show here)")
    print(f"per-network measurements: {csv_path}; plot: {work / 'scatter.png'}")
    return 0


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def measure_rounds(df, nets, groups, runner, rounds: int, csv_path: Path, progress: bool = True) -> None:
    """Time ``nets`` end to end in interleaved rounds, resumably: round columns of ``df`` saved after every round.

    ``groups`` are lists of row indices measured one after the other (each group all its rounds first).
    A rerun with the same networks reuses the rounds already in ``csv_path``.
    """
    from mnas.latency.validate import reuse_rounds

    reuse_rounds(df, csv_path)
    for g in groups:
        todo = [r for r in range(rounds) if f"round{r}_ms" not in df.columns or df.loc[g, f"round{r}_ms"].isna().any()]
        if not todo:
            continue
        calls = runner.network_calls([nets[i] for i in g], progress=progress)
        for r in todo:
            col = f"round{r}_ms"
            if col not in df.columns:
                df[col] = float("nan")
            df.loc[g, col] = runner.time_calls(calls, rounds=1, progress=progress)[0]
            df.to_csv(csv_path, index=False)  # a kill loses at most the round in progress


def cmd_validate(args) -> int:
    from mnas.latency.profiler import ensure_malloc_env

    ensure_malloc_env()
    from mnas.latency.validate import render_report, validate

    res = validate(args.device, samples=args.samples, space=args.space, engine=args.engine, seed=args.seed,
                   out=args.out, rounds=args.rounds)
    if args.json:
        print_json(res)
    else:
        print(render_report(res))
    return 0


def cmd_import_ofa(args) -> int:
    from mnas.latency.ofa import load_ofa_table

    table = load_ofa_table(args.yaml)
    table.meta["device"] = args.device
    target = _default_out(args.device, args.out)
    _refuse_other_table(target, "import-ofa", lambda meta: meta.get("source") == table.meta.get("source"))
    out = table.save(target)
    if args.json:
        print_json({"table": str(out), "device": args.device, "ops": len(table), "source": str(args.yaml)})
        return 0
    print(f"{out}: {len(table)} ops imported from {args.yaml}")
    return 0
