"""`mnas eval ARCH`: one architecture's accuracy from any evaluator (train, supernet, predictor, table)."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json

EVALUATOR_KINDS = ("train", "supernet", "predictor", "table")
DATASETS = ("cifar10", "cifar10-folder", "digits", "imagenet-folder")


def register(sub) -> None:
    p = sub.add_parser("eval", help="accuracy of one architecture: proxy training, supernet, predictor or benchmark table")
    p.add_argument("arch", metavar="ARCH", help="reference name, file, text form, or the space's compact encoding (e.g. 22212220)")
    p.add_argument("--space", default=None, help="search space name or file (needed for compact encodings, predictor, supernet)")
    p.add_argument("--evaluator", "-e", choices=EVALUATOR_KINDS, default="predictor",
                   help="train (proxy training), supernet, predictor (instant, offline; default), table (NAS-Bench-Macro)")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="train/supernet: dataset (default cifar10-folder)")
    p.add_argument("--data-dir", default=None, help="dataset folder or archive (cifar10-folder default: ../shared/data/cifar10/cifar10_jpg.tar.gz)")
    p.add_argument("--epochs", type=float, default=None, help="train: epochs")
    p.add_argument("--steps", type=int, default=None, help="train: optimizer steps (overrides --epochs)")
    p.add_argument("--resolution", type=int, default=None, help="train: input resolution (default: the dataset's)")
    p.add_argument("--train-size", type=int, default=None, help="train: a stratified subset of the training split")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="train: CPU threads (default: all cores)")
    p.add_argument("--model", default=None, help="predictor: a fitted model (.json); default the space's shipped one")
    p.add_argument("--table-path", default=None, help="table: nas-bench-macro_cifar10.json (default ../shared/data/nas_bench_macro/, or $MNAS_NASBENCH_MACRO)")
    p.add_argument("--cache", default=None, help="SQLite file that keeps results across runs")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="any other evaluator option (repeatable), e.g. -o batch_size=64")
    add_json_flag(p)
    p.set_defaults(func=cmd_eval)


def resolve(spec: str, space):
    """``(network, sample or None)`` for a name, file, text form or compact encoding."""
    from mnas.errors import MnasError
    from mnas.resolve import load_arch

    if space is not None and len(spec.strip()) == len(space.choices()) and " " not in spec.strip():
        try:
            sample = space.decode_string(spec)
        except MnasError:
            sample = None
        if sample is not None:
            return space.decode(sample), sample
    try:
        return load_arch(spec), None
    except MnasError as e:
        if space is None and spec.strip().isdigit():
            raise MnasError(f"{spec!r} looks like a compact encoding: give --space (e.g. --space nasbench_macro)") from None
        raise e


def parse_options(items: list[str]) -> dict:
    import yaml

    from mnas.errors import MnasError

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise MnasError(f"--option {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def cmd_eval(args) -> int:
    from mnas.accuracy import get_evaluator

    space = None
    if args.space:
        from mnas.space import load_space

        space = load_space(args.space)
    net, sample = resolve(args.arch, space)
    options = parse_options(args.option)
    flags = {"dataset": args.dataset, "data_dir": args.data_dir, "epochs": args.epochs, "steps": args.steps,
             "resolution": args.resolution, "train_size": args.train_size, "seed": args.seed, "threads": args.threads,
             "model": args.model, "path": args.table_path, "cache": args.cache}
    options.update({k: v for k, v in flags.items() if v is not None})
    if args.evaluator == "train" and not args.json:
        options.setdefault("progress", True)
    ev = get_evaluator(args.evaluator, space=space, **options)
    r = ev.evaluate(net, sample)
    out = {"arch": str(net), **({"code": space.encode_string(sample)} if sample is not None else {}), **r}
    if args.json:
        print_json(out)
        return 0
    print(f"{args.arch}: {args.evaluator} top-1 {r['top1']:.2f} %, loss {r['loss']:.4f}, cost {r['cost_s']:.2f} s"
          f"{' (cached)' if r.get('cached') else ''}")
    return 0
