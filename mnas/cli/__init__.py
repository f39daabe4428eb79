"""The ``mnas`` command: a table of subcommands whose handlers parse arguments and call the library.

Each entry names a module with ``register(subparsers)``; modules import their heavy
dependencies (torch, optuna, ray) inside the handlers so ``mnas --help`` stays fast.
A :class:`~mnas.errors.MnasError` becomes one line on stderr and exit code 2.
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
}


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (and exit code 2), no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def make_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="mnas", description="Hardware-aware neural architecture search (MnasNet, NetAdapt, MobileNetV3).")
    parser.add_argument("--version", action="version", version=f"mnas {__import__('mnas').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in COMMANDS.values():
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except MnasError as e:
        sys.stderr.write(f"mnas: error: {e}\n")
        return e.exit_code
    except BrokenPipeError:  # `mnas arch list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("mnas: interrupted (everything finished so far is saved)\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
