"""`mnas latency list|predict|profile|validate|import-ofa`: per-device latency lookup tables."""

from __future__ import annotations

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
    pp.add_argument("--ops", action="store_true", help="also show every op's key and latency")
    add_json_flag(pp)
    pp.set_defaults(func=cmd_predict)

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

    pv = lsub.add_parser("validate", help="measure random networks end to end against the table's prediction")
    pv.add_argument("--device", required=True)
    pv.add_argument("--samples", type=int, default=50)
    pv.add_argument("--space", default=None, help="search space to sample (default: the table's first space)")
    pv.add_argument("--engine", choices=("onnxruntime", "torch"), default=None, help="default: the table's engine")
    pv.add_argument("--seed", type=int, default=1, help="sampling seed (calibration uses seed 0)")
    pv.add_argument("--rounds", type=int, default=8,
                    help="interleaved measuring rounds per network (default 8, as calibration; raise it to resume with more)")
    pv.add_argument("--out", default=None, help="folder for the CSV and scatter PNG (default runs/latency_validate/DEVICE)")
    add_json_flag(pv)
    pv.set_defaults(func=cmd_validate)

    pi = lsub.add_parser("import-ofa", help="convert a Once-for-All YAML lookup table into an mnas table")
    pi.add_argument("yaml", help="OFA *_lookup_table.yaml")
    pi.add_argument("--device", required=True, help="name of the new table")
    pi.add_argument("--out", default=None, help="table file (default latency_tables/DEVICE.csv)")
    pi.set_defaults(func=cmd_import_ofa)
    p.set_defaults(func=lambda a: p.print_help())


# --------------------------------------------------------------------------- handlers

def cmd_list(args) -> int:
    from mnas.latency.table import available, load_table

    rows = []
    for name, path in available().items():
        t = load_table(path)
        a, b = t.correction
        rows.append({"device": name, "ops": len(t), "engine": t.meta.get("engine", ""), "cpu": t.meta.get("cpu", ""),
                     "threads": t.meta.get("threads"), "correction_a": a, "correction_b": b, "path": str(path)})
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
    return 0


def cmd_predict(args) -> int:
    from mnas.latency import get_predictor
    from mnas.resolve import load_arch

    pred = get_predictor(args.device, num_classes=args.classes)
    out = []
    for spec in args.arch:
        net = load_arch(spec, args.resolution)
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


def _default_out(device: str, out: str | None) -> Path:
    if out:
        return Path(out)
    if any(c in device for c in "/\\") or device.startswith("."):
        raise MnasError(f"--device {device!r}: give a plain name (letters, digits, -, _); use --out for a path")
    return Path("latency_tables") / f"{device}.csv"


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
    table = profiler.open_table(out, args.device, runner)
    if args.space:
        from mnas.space import load_space

        ops, cal_nets, cal_names = [], [], []
        given = [load_space(spec) for spec in args.space]
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
        nets, labels = _nets_from_specs(args.arch, args.resolutions)
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
        corr = profiler.calibrate(table, cal_nets, runner, names=cal_names, num_classes=args.classes)
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
    out = table.save(_default_out(args.device, args.out))
    print(f"{out}: {len(table)} ops imported from {args.yaml}")
    return 0
