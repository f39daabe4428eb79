"""`mnas fidelity`: how well an evaluator ranks a space's networks against a reference evaluator."""

from __future__ import annotations


def register(sub) -> None:
    from mnas.accuracy.base import EVALUATORS
    from mnas.cli.common import add_json_flag

    p = sub.add_parser("fidelity", help="rank agreement of an evaluator with a reference on sampled networks",
                       description="Sample networks of a space, score them with --evaluator and --reference, and "
                                   "print Kendall tau, Spearman rho, MAE after the median offset, top-k overlap and "
                                   "the regret of the best pick under a latency cap, beside the multiply-adds and "
                                   "parameter baselines measured the same way.")
    p.add_argument("--space", required=True, help="search space name or YAML file")
    p.add_argument("--evaluator", required=True, choices=list(EVALUATORS), help="the signal to judge")
    p.add_argument("--reference", required=True, choices=list(EVALUATORS), help="the signal taken as truth")
    p.add_argument("--samples", type=int, default=1000, help="distinct networks sampled (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--resolution", type=int, default=None, help="fix every sample's resolution (a space option)")
    p.add_argument("--device", default="madds", help="latency device for the regret (default madds)")
    p.add_argument("--cap-ms", dest="cap_ms", type=float, default=None,
                   help="latency cap of the regret (ms; default: the samples' median latency)")
    p.add_argument("--top-k", dest="top_k", type=int, default=None, help="k of the top-k overlap (default: samples / 10)")
    p.add_argument("--evaluator-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of --evaluator (repeatable)")
    p.add_argument("--reference-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of --reference (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=cmd_fidelity)


def cmd_fidelity(args) -> int:
    from mnas.cli.common import print_json
    from mnas.fidelity import fidelity, render
    from mnas.run import parse_options

    res = fidelity(args.space, args.evaluator, args.reference, samples=args.samples, seed=args.seed,
                   device=args.device, cap_ms=args.cap_ms, top_k=args.top_k, resolution=args.resolution,
                   evaluator_options=parse_options(args.evaluator_option, "--evaluator-option"),
                   reference_options=parse_options(args.reference_option, "--reference-option"))
    if args.json:
        print_json(res)
    else:
        print(render(res))
    return 0
