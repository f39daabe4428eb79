"""`mnas export`: write an architecture as ONNX (or its YAML/JSON/text data)."""

from __future__ import annotations

from mnas.errors import MnasError


def register(sub) -> None:
    p = sub.add_parser("export", help="export an architecture as ONNX, YAML, JSON or text")
    p.add_argument("arch", metavar="NAME|FILE")
    p.add_argument("--format", choices=["onnx", "yaml", "json", "text"], default="onnx")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--classes", type=int, default=1000)
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from pathlib import Path

    from mnas.arch import save_network
    from mnas.resolve import load_arch

    net = load_arch(args.arch, args.resolution)
    out = Path(args.out)
    if args.format == "onnx":
        from mnas.export import export_onnx

        export_onnx(net, out, num_classes=args.classes)
    else:
        suffix = {"yaml": ".yaml", "json": ".json", "text": ".txt"}[args.format]
        if out.suffix != suffix:
            raise MnasError(f"--format {args.format} writes a {suffix} file; name the output like {out.with_suffix(suffix)}")
        save_network(net, out)
    print(f"wrote {out}")
    return 0
