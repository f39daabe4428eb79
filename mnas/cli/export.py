"""`mnas export`: write an architecture as ONNX (or its YAML/JSON/text data)."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json
from mnas.errors import MnasError


def register(sub) -> None:
    p = sub.add_parser("export", help="export an architecture as ONNX, YAML, JSON or text")
    p.add_argument("arch", metavar="NAME|FILE")
    p.add_argument("--format", choices=["onnx", "yaml", "json", "text"], default="onnx")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--classes", type=int, default=1000)
    add_json_flag(p)
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from pathlib import Path

    from mnas.arch import save_network
    from mnas.resolve import load_arch

    out = Path(args.out)
    suffix = {"onnx": ".onnx", "yaml": ".yaml", "json": ".json", "text": ".txt"}[args.format]
    if out.suffix != suffix and not (args.format == "yaml" and out.suffix == ".yml"):
        raise MnasError(f"--format {args.format} writes a {suffix} file; name the output like {out.with_suffix(suffix)}"
                        + ("" if args.format != "onnx" or out.suffix not in (".yaml", ".yml", ".json", ".txt")
                           else f" (or add --format {dict(zip(('.yaml', '.yml', '.json', '.txt'), ('yaml', 'yaml', 'json', 'text')))[out.suffix]})"))
    net = load_arch(args.arch, args.resolution)
    if args.format == "onnx":
        from mnas.export import export_onnx

        export_onnx(net, out, num_classes=args.classes)
    else:
        save_network(net, out)
    if args.json:
        from mnas.counting import count

        c = count(net)
        print_json({"file": str(out), "format": args.format, "arch": str(net), "resolution": net.resolution,
                    "classes": args.classes, "bytes": out.stat().st_size, "params": c.params, "madds": c.madds})
        return 0
    print(f"wrote {out}")
    return 0
