"""`mnas data list|fetch`: the datasets and benchmarks mnas reads, where they are, and how to get them."""

from __future__ import annotations

from mnas.cli.common import add_json_flag, print_json


def register(sub) -> None:
    from mnas.data.registry import DATASETS

    p = sub.add_parser("data", help="datasets and benchmarks: list where they are looked for, fetch them")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)

    pl = dsub.add_parser("list", help="each dataset: present or not, where it is looked for, licence and citation")
    add_json_flag(pl)
    pl.set_defaults(func=cmd_list)

    pf = dsub.add_parser("fetch", help="download (resumably), check the sha256 and convert a dataset into the data root",
                         description="Install a dataset where mnas looks for it: downloaded from its published URLs "
                                     "(where a network exists), or from a copy you have (--from). Release formats are "
                                     "converted into what mnas reads (Accel-NASBench's JSON tarball into its CSV).")
    pf.add_argument("name", choices=list(DATASETS), metavar="NAME", help=f"one of {', '.join(DATASETS)}")
    pf.add_argument("--from", dest="source", default=None, metavar="FILE_OR_URL",
                    help="a local file or folder holding the published form (or another URL) instead of the "
                         "published URLs")
    pf.add_argument("--dir", default=None, metavar="D",
                    help="data root to install into (default: $MNAS_DATA, else $MNAS_CACHE/data, else ~/.cache/mnas/data)")
    pf.add_argument("--force", action="store_true", help="download again even if it is already there (--from always installs)")
    pf.add_argument("--no-check", action="store_true", help="install even where a sha256 differs from the published one")
    pf.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_flag(pf)
    pf.set_defaults(func=cmd_fetch)


def cmd_list(args) -> int:
    from mnas.data.registry import DATA_ENV, data_root, status

    rows = status()
    if args.json:
        print_json({"data_root": str(data_root()), "datasets": rows})
        return 0
    print(f"data root: {data_root()}  (${DATA_ENV}; `mnas data fetch NAME` installs there)")
    width = max(len(r["name"]) for r in rows)
    print(f"{'NAME':<{width}}  {'PRESENT':<7}  {'LICENCE':<12}  WHERE (found, or where fetch puts it)")
    for r in rows:
        present = "yes" if r["present"] else ("shipped" if r["shipped"] else "no")
        where = f"{r['found_in']}: {r['path']}" if r["present"] else r["path"]
        print(f"{r['name']:<{width}}  {present:<7}  {r['licence']:<12}  {where}")
    print("\nlooked for in this order (after a path you pass): the dataset's environment variable, the data root, "
          "then $MNAS_SHARED_DATA or ../shared/data")
    for r in rows:
        env = f"; ${r['env']}" if r["env"] else ""
        shipped = f"; ships as {r['shipped']}" if r["shipped"] else ""
        note = f"\n  note: {r['note']}" if r["note"] else ""
        print(f"\n{r['name']}: {r['title']}\n  used by: {r['used_by']}{env}{shipped}\n  licence: {r['licence']}\n"
              f"  cite: {r['citation']}{note}")
    return 0


def cmd_fetch(args) -> int:
    from mnas.data.fetch import fetch
    from mnas.data.registry import DATA_ENV, data_root

    report = fetch(args.name, args.source, args.dir, progress=not (args.no_progress or args.json),
                   check=not args.no_check, force=args.force)
    if args.json:
        print_json(report)
        return 0
    if report.get("already_present"):
        print(f"{args.name}: already at {report['path']} (--force installs it again)")
        return 0
    for entry in report["inputs"]:
        sha = f"sha256 {entry['sha256'][:16]}…" if entry.get("sha256") else ""
        print(f"input {entry['file']}: {sha} verified: {entry['verified']}".replace(":  verified", ": verified"))
    conv = report.get("converted")
    if conv:
        extra = ", ".join(f"{k} {v}" for k, v in conv.items() if k not in ("from", "to") and not isinstance(v, list))
        print(f"converted {conv['from']} -> {conv['to']}" + (f" ({extra})" if extra else ""))
    print(f"{args.name}: installed at {report['path']}")
    if args.dir and data_root().resolve() != __import__("pathlib").Path(args.dir).expanduser().resolve():
        print(f"(mnas looks in {data_root()}: set {DATA_ENV}={args.dir} for it to find this one)")
    return 0
