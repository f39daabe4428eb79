"""`mnas arch list|show`: the reference networks and any architecture's table and counts."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json


def register(sub) -> None:
    p = sub.add_parser("arch", help="list reference networks, show an architecture's table and counts")
    asub = p.add_subparsers(dest="arch_command", metavar="ACTION", parser_class=type(p))
    pl = asub.add_parser("list", help="list registered reference networks")
    add_json_flag(pl)
    pl.set_defaults(func=cmd_list)
    ps = asub.add_parser("show", help="paper-style table, parameters and multiply-adds of NAME, FILE or a text form")
    ps.add_argument("arch", metavar="NAME|FILE")
    ps.add_argument("--space", default=None,
                    help="ARCH is this space's compact encoding (e.g. --space anb 1311-6321-6521-6331-6531-6541-6311)")
    ps.add_argument("--resolution", type=int, default=None, help="input resolution (default: the architecture's own)")
    ps.add_argument("--classes", type=int, default=1000, help="classifier outputs (default 1000)")
    ps.add_argument("--device", default=None, help="also predict latency on this device's lookup table")
    add_json_flag(ps)
    ps.set_defaults(func=cmd_show)
    p.set_defaults(func=lambda a: p.print_help())


def cmd_list(args) -> int:
    from mnas import zoo
    from mnas.counting import count

    data: list[dict] = []
    for name in zoo.names():
        c = count(zoo.get(name))
        data.append({"name": name, "params": c.params, "madds": c.madds, "description": zoo.describe(name)})
    if args.json:
        print_json(data)
        return 0
    w = max(len(d["name"]) for d in data)
    print(f"{'name':<{w}}  {'params':>10}  {'madds':>9}  description")
    for d in data:
        print(f"{d['name']:<{w}}  {d['params']:>10,}  {d['madds'] / 1e6:>8.1f}M  {d['description']}")
    return 0


def cmd_show(args) -> int:
    from mnas.archtable import render, rows
    from mnas.counting import count
    from mnas.resolve import load_arch

    space = None
    if args.space:
        from mnas.space import load_space

        space = load_space(args.space)
    net = load_arch(args.arch, args.resolution, space=space)
    c = count(net, args.classes)
    latency = None
    if args.device:
        from mnas.latency import get_predictor

        latency = get_predictor(args.device).predict(net)
    if args.json:
        out = {"arch": str(net), "resolution": net.resolution, **c.as_dict(), "table": rows(net)}
        if latency is not None:
            out["latency_ms"] = latency
            out["device"] = args.device
        print_json(out)
        return 0
    print(f"{args.arch} @ {net.resolution}×{net.resolution}")
    print(render(net))
    print()
    print(f"parameters      {c.params:,}")
    print(f"multiply-adds   {c.madds:,} ({c.madds / 1e6:.1f} M)")
    print(f"activations     {c.activations:,} elements (peak layer {c.peak_activations:,})")
    if latency is not None:
        print(f"latency         {latency:.2f} ms on {args.device} (predicted)")
    print(f"text form       {net}")
    return 0
