"""`mnas eval ARCH`: one architecture's accuracy from any registered evaluator (imagenet, anb, table, predictor, ...)."""

from __future__ import annotations

from mnas.accuracy.base import DEFAULT_EVALUATOR
from mnas.cli.common import add_json_flag, print_json, space_evaluator_help
from mnas.registries import evaluators, listing, spaces

DATASETS = ("cifar10", "cifar10-folder", "digits", "imagenet-folder")


def register(sub) -> None:
    p = sub.add_parser("eval", help="accuracy of one architecture from any evaluator: estimate, surrogate, benchmark table, "
                                      "predictor, supernet or proxy training")
    p.add_argument("arch", metavar="ARCH", nargs="?", default=None,
                   help="reference name, file, text form, or the space's compact encoding (e.g. 22212220)")
    p.add_argument("--batch", metavar="FILE", default=None,
                   help="evaluate every architecture in FILE ('-' = stdin), one per line in any form ARCH takes "
                   "(blank lines and # comments skipped); prints one JSON object per line (line, arch, code, evaluator, top1, ...); "
                   "a bad line is an error naming its line number")
    p.add_argument("--space", default=None, help=f"search space: {listing(spaces())}, or a YAML file (needed for compact encodings, predictor, supernet)")
    p.add_argument("--evaluator", "-e", choices=evaluators(), default=None,
                   help="imagenet (estimated ImageNet top-1), anb (Accel-NASBench surrogate), table (a benchmark's "
                   "measured top-1: NAS-Bench-Macro, or Accel-NASBench with --space anb), predictor (instant, offline), "
                   "supernet (weight sharing), train (proxy training), or any registered one "
                   f"(default: {DEFAULT_EVALUATOR} without --space, else the space's own: {space_evaluator_help()})")
    p.add_argument("--dataset", choices=DATASETS, default=None, help="train/supernet: dataset (default cifar10-folder)")
    p.add_argument("--data-dir", default=None, help="dataset folder or archive (default: $MNAS_CIFAR10 or the data root's; `mnas data list` shows where)")
    p.add_argument("--epochs", type=float, default=None, help="train: epochs")
    p.add_argument("--steps", type=int, default=None, help="train: optimizer steps (overrides --epochs)")
    p.add_argument("--resolution", type=int, default=None,
                   help="train: input resolution (default: the dataset's); other evaluators: the network's input size "
                        "(default: the network's own)")
    p.add_argument("--train-size", type=int, default=None, help="train: a stratified subset of the training split")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="train: CPU threads (default: all cores)")
    p.add_argument("--model", default=None, help="predictor: a fitted model (.json); default the space's shipped one")
    p.add_argument("--table-path", default=None, help="table: nas-bench-macro_cifar10.json (default $MNAS_NASBENCH_MACRO or the data root's) or, with --space anb, "
                   "accel_nasbench.csv (default $MNAS_ANB_CSV or the data root's); `mnas data fetch NAME` installs them")
    p.add_argument("--cache", default=None, help="SQLite file that keeps results across runs")
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="any other evaluator option (repeatable), e.g. -o batch_size=64")
    add_json_flag(p)
    p.set_defaults(func=cmd_eval)


def resolve(spec: str, space):
    """``(network, sample or None)`` for a name, file, text form or compact encoding."""
    from mnas.errors import MnasError
    from mnas.resolve import load_arch

    # digits alone are never a network's name or text form: in a space, a wrong length is a malformed code
    if space is not None and (space.is_code(spec) or spec.strip().isdigit()):
        try:
            sample = space.decode_string(spec)
        except MnasError:
            if getattr(space, "encoding", None) is not None or spec.strip().isdigit():
                raise  # a grouped encoding (anb), or digits alone: the error names what is wrong with the code
            sample = None
        if sample is not None:
            return space.decode(sample), sample
    try:
        return load_arch(spec), None
    except MnasError as e:
        code = spec.strip()
        if space is None and (code.isdigit() or (code.replace("-", "").isdigit() and "-" in code)):
            example = "--space anb" if "-" in code else "--space nasbench_macro"
            raise MnasError(f"{spec!r} looks like a compact encoding: give --space (e.g. {example})") from None
        raise e


def parse_options(items: list[str]) -> dict:
    from mnas.run import parse_options as parse

    return parse(items, "--option")


def read_batch(path: str, space) -> list[tuple[int, str, object, dict | None, str | None]]:
    """``(line number, text, network, sample, code)`` per architecture line of ``path`` ('-' = stdin).

    Every line is resolved before anything is evaluated; a bad one is an error naming
    ``FILE:LINE``. Accel-NASBench encodings take a fast path (per-block decoding, cached).
    """
    import sys
    from pathlib import Path

    from mnas.errors import MnasError

    if path == "-":
        text, where = sys.stdin.read(), "<stdin>"
    else:
        p = Path(path)
        if not p.is_file():
            from mnas.io import not_a_file

            raise MnasError(f"--batch {not_a_file(p, 'one architecture per line; - reads stdin')}")
        try:
            text, where = p.read_text(), str(p)
        except UnicodeDecodeError:
            raise MnasError(f"--batch {path}: not a text file (one architecture per line)") from None
    anb_space = space is not None and getattr(space, "name", "") == "anb"
    out: list[tuple[int, str, object, dict | None, str | None]] = []
    for i, line in enumerate(text.splitlines(), 1):
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        try:
            if anb_space and space.is_code(spec):
                from mnas import anb

                c = anb.parse_code(spec)
                out.append((i, spec, anb.network_of(c), None, anb.format_code(c)))
                continue
            net, sample = resolve(spec, space)
            code = space.encode_string(sample) if sample is not None else None
            if code is None and anb_space:
                from mnas import anb

                code = anb.format_code(anb.choices_of(net))
            out.append((i, spec, net, sample, code))
        except MnasError as e:
            raise MnasError(f"{where}:{i}: {e}") from None
    if not out:
        raise MnasError(f"--batch {where}: no architectures in it (one per line; blank lines and # comments are skipped)")
    return out


def run_batch(ev, batch, space) -> int:
    """Evaluate ``batch`` with ``ev.evaluate_many`` and print one JSON object per line."""
    import json
    import math

    from mnas.errors import MnasError

    nets = [b[2] for b in batch]
    samples = [b[3] for b in batch]
    try:
        results = ev.evaluate_many(nets, samples)
    except MnasError:
        for i, spec, net, sample, _ in batch:  # find the line that fails
            try:
                ev.evaluate(net, sample)
            except MnasError as e:
                raise MnasError(f"line {i} ({spec}): {e}") from None
        raise

    def clean(v):
        return None if isinstance(v, float) and not math.isfinite(v) else v

    write = __import__("sys").stdout.write
    for (i, spec, net, sample, code), r in zip(batch, results):
        row = {"line": i, "arch": str(net), **({"code": code} if code is not None else {}),
               **{k: clean(v) for k, v in r.items()}}
        write(json.dumps(row, default=str) + "\n")
    return 0


def cmd_eval(args) -> int:
    import math
    from typing import cast

    from mnas.arch import Network

    from mnas.accuracy import get_evaluator
    from mnas.errors import MnasError

    space = None
    if args.space:
        from mnas.space import load_space

        space = load_space(args.space)
    if args.batch is not None and args.arch is not None:
        raise MnasError(f"give either ARCH ({args.arch!r}) or --batch FILE, not both")
    if args.batch is None and args.arch is None:
        raise MnasError("give an architecture (ARCH) or --batch FILE (see `mnas eval --help`)")
    batch = read_batch(args.batch, space) if args.batch is not None else None
    net, sample = resolve(args.arch, space) if batch is None else (None, None)
    options = parse_options(args.option)
    flags = {"dataset": args.dataset, "data_dir": args.data_dir, "epochs": args.epochs, "steps": args.steps,
             "resolution": args.resolution, "train_size": args.train_size, "seed": args.seed, "threads": args.threads,
             "model": args.model, "path": args.table_path, "cache": args.cache}
    options.update({k: v for k, v in flags.items() if v is not None})
    if args.evaluator == "train" and not args.json:
        options.setdefault("progress", True)
    if args.evaluator is None:
        from mnas.accuracy.base import default_evaluator

        args.evaluator = default_evaluator(space)
    from mnas.cli.common import check_options, evaluator_option_spec

    spec = evaluator_option_spec(args.evaluator)
    if "resolution" in options and "resolution" not in spec and "resolution" not in parse_options(args.option):
        # an evaluator of the network as it is (an estimate, a table): --resolution sets the network's input size
        res = options.pop("resolution")
        if batch is not None:
            batch = [(i, s_, cast(Network, n).with_resolution(res), None, None) for i, s_, n, _, _ in batch]
        else:
            net, sample = net.with_resolution(res), None
    given = parse_options(args.option)
    flag_of = {v: k for k, v in (("table_path", "path"),)}
    check_options(f"the {args.evaluator} evaluator", options, evaluator_option_spec(args.evaluator),
                  lambda k: f"-o {k}={given[k]!r}" if k in given else f"--{flag_of.get(k, k).replace('_', '-')}")
    ev = get_evaluator(args.evaluator, space=space, **options)
    if batch is not None:
        return run_batch(ev, batch, space)
    r = ev.evaluate(net, sample)
    out = {"arch": str(net), **({"code": space.encode_string(sample)} if sample is not None else {}), **r}
    if args.json:
        print_json(out)
        return 0
    if args.evaluator == "imagenet":
        print(f"{args.arch}: est. ImageNet top-1 {r['top1']:.2f} % ({r['model']}; leave-one-family-out error "
              f"{r['mae_pp']:.2f} pp MAE, Kendall tau {r['kendall_tau']:.3f})"
              f"{'  EXTRAPOLATED: ' + r['extrapolated_why'] if r.get('extrapolated') else ''}")
        return 0
    if args.evaluator == "anb":
        print(f"{args.arch}: predicted Accel-NASBench ImageNet top-1 {r['top1']:.2f} % (surrogate {r['model']}; "
              f"10-fold CV RMSE {r['cv_rmse_pp']:.3f} pp, Kendall tau {r['cv_kendall_tau']:.3f})")
        return 0
    if args.evaluator == "table" and "runs" in r:
        print(f"{args.arch}: Accel-NASBench ImageNet top-1 {r['top1']:.3f} % (measured, 16-epoch proxy"
              f"{', mean of 2 runs' if r['runs'] > 1 else ''}), top-5 {r.get('top5', math.nan):.3f} %")
        return 0
    print(f"{args.arch}: {args.evaluator} top-1 {r['top1']:.2f} %, loss {r['loss']:.4f}, cost {r['cost_s']:.2f} s"
          f"{' (cached)' if r.get('cached') else ''}")
    return 0
