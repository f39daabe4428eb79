"""The ``mnas`` command: a table of subcommands whose handlers parse arguments and call the library.

Each entry names a module with ``register(subparsers)``; modules import their heavy
dependencies (torch, optuna, ray) inside the handlers so ``mnas --help`` stays fast.
A :class:`~mnas.errors.MnasError` becomes one line on stderr and exit code 2; Ctrl-C or
SIGTERM one line and exit code 130; any other exception one line naming where its
traceback was saved (``MNAS_DEBUG=1`` prints it), exit code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mnas.errors import MnasError

# subcommand -> module defining register(subparsers). Add a line to add a command.
COMMANDS: dict[str, str] = {
    "arch": "mnas.cli.arch",
    "export": "mnas.cli.export",
    "search": "mnas.cli.search",
    "eval": "mnas.cli.eval",
    "supernet": "mnas.cli.supernet",
    "latency": "mnas.cli.latency",
    "netadapt": "mnas.cli.netadapt",
    "replay": "mnas.cli.replay",
    "plot": "mnas.cli.plot",
    "dashboard": "mnas.cli.dashboard",
    "train": "mnas.cli.train",
    "data": "mnas.cli.data",
    "fidelity": "mnas.cli.fidelity",
}


class UsageExit(SystemExit):
    """A bad flag, already reported: exit code 2 (``main`` returns it instead of exiting)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (and exit code 2), no usage dump.

    Abbreviations are off (``--target 15`` is an unknown flag, not ``--target-ms 15``): every
    subcommand's parser is this class (``parser_class=``), so the rule covers them all.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {' '.join(message.split())} (see `{self.prog} --help`)\n")
        raise UsageExit(2)


# Validation at the edge: every numeric option gets a checking type by its name (the tables live in
# mnas.cli.common, beside the checkers), and every ``--out`` is checked before any work starts.
from mnas.cli.common import COMMAND_NUMBER_TYPES, NUMBER_TYPES  # noqa: E402,F401

# options (other than --out) that name a folder mnas writes into: checked like a run folder's --out
FOLDER_DESTS = ("work",)
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".webp", ".eps", ".ps", ".tif", ".tiff")
# what --out is, per subcommand path (a prefix matches: ("plot",) covers every plot)
OUT_KINDS: dict[tuple[str, ...], tuple[str, tuple[str, ...] | None]] = {
    ("search",): ("dir", None),
    ("netadapt",): ("dir", None),
    ("replay",): ("dir", None),
    ("latency", "validate"): ("dir", None),
    ("latency", "profile"): ("file", (".csv",)),
    ("latency", "import-ofa"): ("file", (".csv",)),
    ("latency", "calibrate"): ("file", (".csv",)),
    ("supernet", "train"): ("file", (".pt",)),
    ("plot",): ("file", IMAGE_SUFFIXES),
    ("export",): ("file", None),  # the suffix must match --format: checked by the command
}


# the run a command's folder holds (--out refuses another command's; --resume names the command that resumes it)
RUN_KINDS: dict[tuple[str, ...], str] = {("search",): "search", ("netadapt",): "netadapt", ("replay",): "replay",
                                         ("latency", "validate"): "latency validate"}


def _out_type(kind: str, suffixes, run: str | None = None):
    from mnas.cli.common import out_dir_type, out_file_type

    return out_dir_type(run) if kind == "dir" else out_file_type(suffixes)


def _harden(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> None:
    """Give every numeric option and every ``--out`` of ``parser`` and its subcommands a checking type."""
    from mnas.cli import common

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                _harden(child, (*path, name))
            continue
        if action.type in (int, float):
            default = "nonneg_int" if action.type is int else "nonneg_float"  # signed ones are listed (alpha, beta)
            name = COMMAND_NUMBER_TYPES.get((*path, action.dest)) or NUMBER_TYPES.get(action.dest, default)
            action.type = getattr(common, name)
        elif action.dest in FOLDER_DESTS and action.type is None:
            action.type = _out_type("dir", None)
        elif action.dest == "out" and action.type is None:
            for prefix, (kind, suffixes) in OUT_KINDS.items():
                if path[: len(prefix)] == prefix:
                    action.type = _out_type(kind, suffixes, RUN_KINDS.get(path))
                    break
        elif action.dest == "cache" and action.type is None:
            action.type = common.cache_file_type()
        elif action.dest == "resume" and action.type is None and path in RUN_KINDS:
            action.type = common.resume_dir_type(RUN_KINDS[path])


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnas", description="Hardware-aware neural architecture search (MnasNet, NetAdapt, MobileNetV3).")
    parser.add_argument("--version", action="version", version=f"mnas {__import__('mnas').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    _harden(parser)
    return parser


def _cache_dir():
    import os
    from pathlib import Path

    return Path(os.environ.get("MNAS_CACHE") or Path.home() / ".cache" / "mnas").expanduser()


def _save_traceback() -> str | None:
    """Write the current exception's traceback to the cache folder; its path (None if that fails)."""
    import os
    import traceback

    try:
        path = _cache_dir() / "last-traceback.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"pid {os.getpid()}: mnas {' '.join(sys.argv[1:])}\n" + traceback.format_exc())
        return str(path)
    except OSError:
        return None


def _one_line(e: BaseException) -> str:
    """The message on one line (newlines folded), cut at 1,000 characters."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 1000 else text[:997] + "..."


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning printed the way tqdm prints a line: the progress bars step aside and are redrawn
    below it, instead of the warning being written into the middle of a bar."""
    import warnings

    text = warnings.formatwarning(message, category, filename, lineno, line).rstrip("\n")
    if "tqdm" in sys.modules:
        sys.modules["tqdm"].tqdm.write(text, file=file or sys.stderr)
    else:
        (file or sys.stderr).write(text + "\n")


def _on_sigterm(signum, frame) -> None:
    import mnas.io
    from mnas.io import Interrupted

    mnas.io.last_signal = signum
    raise Interrupted("terminated by SIGTERM", signum)


def _on_sigint(signum, frame) -> None:
    """Ctrl-C outside a search's guard: like Python's own handler, but remembered (see :func:`main`)."""
    import mnas.io

    mnas.io.last_signal = signum
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the command line; every failure ends as one line on stderr.

    Exit codes: 0 done, 2 bad input (:class:`MnasError`, bad flags), 130 interrupted
    (Ctrl-C or SIGTERM), 1 an unexpected error (a bug: one line here, the traceback in
    ``~/.cache/mnas/last-traceback.txt``; ``MNAS_DEBUG=1`` prints it instead).
    """
    import os
    import signal
    import threading

    debug = os.environ.get("MNAS_DEBUG", "") not in ("", "0")
    import mnas.io

    mnas.io.last_signal = None
    old_term = old_int = None
    import warnings

    old_showwarning = warnings.showwarning
    warnings.showwarning = _show_warning  # above a progress bar, not through it
    if threading.current_thread() is threading.main_thread():
        old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored
            old_int = signal.signal(signal.SIGINT, _on_sigint)
    failed = False  # refused: the run folders it made are removed if they hold no results (mnas.io.release_all)
    stdout = sys.stdout
    sys.stdout = _Stdout(stdout)  # type: ignore[assignment]
    try:
        parser = make_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0 if args.command is None else 2
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a full stdout (`> /dev/full`) is reported here, not at interpreter exit
        return code
    except UsageExit:
        return 2
    except MnasError as e:
        failed = True
        sys.stderr.write(f"mnas: error: {_one_line(e)}\n")
        return e.exit_code
    except BrokenPipeError:  # `mnas arch list | head`
        _drop_stdout()
        sys.stderr.close()
        return 0
    except OSError as e:
        if isinstance(e, StdoutError) or _stdout_broken():
            sys.stderr.write(f"mnas: error: cannot write to standard output ({e.strerror or e})\n")
            return 2
        if e.errno in mnas.io.USER_ERRNOS:  # the environment (full disk, read-only folder), not a bug
            failed = True
            where = e.filename if e.filename is not None else "a file"
            sys.stderr.write(f"mnas: error: {_one_line(mnas.io.write_error(where, e, 'cannot use'))}\n")
            return 2
        return _internal_error(e, debug)
    except KeyboardInterrupt as e:
        from mnas.io import Interrupted

        msg = str(e) if isinstance(e, Interrupted) else "interrupted by SIGINT (Ctrl-C)"
        sys.stderr.write(f"mnas: {_one_line(Exception(msg))}\n")
        return 130
    except Exception as e:  # a bug: keep the traceback, but out of the user's way
        return _internal_error(e, debug)
    finally:
        if isinstance(sys.stdout, _Stdout):
            sys.stdout = stdout
        warnings.showwarning = old_showwarning
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if old_int is not None:
            signal.signal(signal.SIGINT, old_int)
        if "mnas.io" in sys.modules:  # the command is over: give back the run folders it claimed
            sys.modules["mnas.io"].release_all(failed=failed)


def _internal_error(e: Exception, debug: bool) -> int:
    import mnas.io

    if mnas.io.last_signal is not None and not debug:
        # raised while a Ctrl-C/SIGTERM was being handled (matplotlib's Agg renderer turns one into
        # `ValueError: Invalid bounding box`): it is the interrupt, not a bug
        sys.stderr.write(f"mnas: interrupted by {mnas.io.signal_name(mnas.io.last_signal)}\n")
        return 130
    if debug:
        raise e
    where = _save_traceback()
    hint = f"traceback in {where}; " if where else ""
    sys.stderr.write(f"mnas: internal error: {type(e).__name__}: {_one_line(e)} ({hint}rerun with MNAS_DEBUG=1 "
                     "to print it, and please report it)\n")
    return 1


class StdoutError(OSError):
    """Standard output refused what was printed (``mnas arch list > /dev/full``)."""


class _Stdout:
    """``sys.stdout`` during a command: a failed write raises :class:`StdoutError` (one line, exit 2)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def _guard(self, call, *args):
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as e:
            _drop_stdout(self._stream)
            raise StdoutError(e.errno, e.strerror or str(e)) from None

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _drop_stdout(stream=None) -> None:
    """Point ``stream``'s file (stdout) at /dev/null, so the interpreter's final flush of what is buffered cannot fail."""
    import os

    try:
        target = (stream or sys.stdout).fileno()
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, target)
        os.close(fd)
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


def _stdout_broken() -> bool:
    """Whether standard output cannot take what was printed (``> /dev/full``); if so it is dropped."""
    try:
        sys.stdout.flush()
    except OSError:
        _drop_stdout()
        return True
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
