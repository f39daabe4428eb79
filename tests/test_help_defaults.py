"""Every default a `--help` text states is the default the code uses.

A help text says "(default X)"; the code's default is either the argparse default or, where the flag's
default is None (resolved later), the field of the command's typed config (SearchConfig, NetAdaptConfig,
SupernetConfig). Phrases such as "the dataset's" are not literal values and are not compared.
"""

from __future__ import annotations

import argparse
import dataclasses
import re

import pytest

from mnas.cli import make_parser


def _walk(parser, path=()):
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield from _walk(sub, path + (name,))
        elif a.help and a.help is not argparse.SUPPRESS:
            yield path, a


def _configs():
    from mnas.accuracy.supernet_train import SupernetConfig
    from mnas.netadapt.loop import NetAdaptConfig
    from mnas.search.config import SearchConfig

    return {("search",): SearchConfig, ("netadapt",): NetAdaptConfig, ("supernet", "train"): SupernetConfig}


_LITERAL = re.compile(r"^-?[\w.\-]+$")


def stated_defaults():
    out = []
    for path, action in _walk(make_parser()):
        m = re.search(r"\(default:? ([^;),]+)", action.help)
        if not m:
            continue
        said = m.group(1).strip().rstrip(".")
        if not _LITERAL.match(said):  # a phrase ("the dataset's", "500 for tpe"), not a value
            continue
        out.append((" ".join(path), action.option_strings[0] if action.option_strings else action.dest, said, action))
    return out


CASES = stated_defaults()


def test_the_walk_finds_the_stated_defaults():
    found = {(cmd, opt) for cmd, opt, _, _ in CASES}
    # a few that must be among them (each states a literal default)
    assert {("search", "--trials"), ("latency validate", "--rounds"), ("latency calibrate", "--rounds")} <= found


@pytest.mark.parametrize("cmd, opt, said, action", CASES, ids=[f"{c} {o}" for c, o, _, _ in CASES])
def test_help_default_is_the_code_default(cmd, opt, said, action):
    import importlib

    from mnas.cli import COMMANDS

    cli_defaults = getattr(importlib.import_module(COMMANDS[cmd.split()[0]]), "CLI_DEFAULTS", {})
    if action.default not in (None, argparse.SUPPRESS):
        code = action.default
    elif action.dest in cli_defaults:  # the command sets it before building its config
        code = cli_defaults[action.dest]
    else:
        config = _configs().get(tuple(cmd.split()))
        if config is None:
            pytest.skip(f"{cmd} {opt}: resolved in the command's code, not a config field")
        fields = {f.name: f for f in dataclasses.fields(config)}
        f = fields.get(action.dest)
        if f is None or f.default is dataclasses.MISSING:
            pytest.skip(f"{cmd} {opt}: no config field with a plain default")
        code = f.default
        if code is None:  # resolved in __post_init__: construct the config to see the value
            required = {n: "mobilenet_v3_small" for n, fl in fields.items()
                        if fl.default is dataclasses.MISSING and fl.default_factory is dataclasses.MISSING}
            code = getattr(config(**required), action.dest)
    assert str(code) == said or (isinstance(code, float) and float(said) == code), \
        f"`mnas {cmd} --help` says {opt} defaults to {said}; the code uses {code!r}"
