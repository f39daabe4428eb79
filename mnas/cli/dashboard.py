"""`mnas dashboard RUN`: a live view of a search's trials in optuna-dashboard (an optional dependency).

    pip install 'mnas[dashboard]'         # or: pip install optuna-dashboard
    mnas dashboard runs/20250101-120000   # then open http://127.0.0.1:8080/

The dashboard only reads the run's storage (``trials.journal`` or ``trials.db``, or the
run's ``--storage`` URL) and takes no lock, so it can watch a search while it runs; it
listens on 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="serve optuna-dashboard over a search run's trials (live, read-only)")
    p.add_argument("run", metavar="RUN", help="search run folder")
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 shares it)")
    p.set_defaults(func=cmd_dashboard)


def run_storage(run: str | Path):
    """The Optuna storage of search run folder ``run`` (opened for reading; nothing is created)."""
    import optuna

    from mnas.errors import MnasError
    from mnas.search.config import SearchConfig

    run = Path(run)
    if not run.is_dir():
        raise MnasError(f"{run}: no such run folder (give a folder `mnas search` wrote)")
    if not (run / "config.yaml").is_file():
        raise MnasError(f"{run}: not a search run folder (no config.yaml)")
    config = SearchConfig.load(run / "config.yaml")
    setting = config.storage
    if setting and setting.startswith("journal:"):
        journal = Path(setting.split(":", 1)[1])
        setting = None
    else:
        journal = run / "trials.journal"
    if setting == "memory":
        raise MnasError(f"{run} was searched with storage 'memory': no trials were kept to show")
    if setting:  # an RDB URL shared by many workers
        return optuna.storages.RDBStorage(setting)
    if journal.is_file():
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        from mnas.search.storage import verify_journal

        verify_journal(journal, use="show")  # a damaged line: one error naming it, not a traceback

        return JournalStorage(JournalFileBackend(str(journal)))
    if (run / "trials.db").is_file():
        from mnas.io import check_trials_db

        check_trials_db(run / "trials.db", config.study_name)
        return optuna.storages.RDBStorage(f"sqlite:///{(run / 'trials.db').resolve()}",
                                          engine_kwargs={"connect_args": {"timeout": 60}})
    raise MnasError(f"{run}: no trials stored yet (no trials.journal or trials.db); start the search first")


def cmd_dashboard(args) -> int:
    import sys
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from mnas.errors import MnasError

    if args.port > 65535:
        raise MnasError(f"--port must be at most 65535, got {args.port}")
    storage = run_storage(args.run)  # a wrong folder is reported before a missing optional package
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise MnasError("optuna-dashboard is not installed: pip install 'mnas[dashboard]' "
                        "(or pip install optuna-dashboard)") from None
    app = wsgi(storage)

    class Quiet(WSGIRequestHandler):
        def log_message(self, format, *a) -> None:  # no line per request
            return None

    try:
        server = make_server(args.host, args.port, app, handler_class=Quiet)
    except OSError as e:
        import errno
        import socket

        if isinstance(e, socket.gaierror) or e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            fix = "--host must be an address of this machine (127.0.0.1, 0.0.0.0 or a name that resolves to one)"
        elif e.errno == errno.EACCES:
            fix = "ports below 1024 need root: choose a --port of 1024 or more"
        else:
            fix = "choose another --port"
        raise MnasError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e}): {fix}") from None
    print(f"optuna-dashboard for {args.run}: http://{args.host}:{server.server_port}/  (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stderr.write("dashboard stopped\n")
    finally:
        server.server_close()
    return 0
