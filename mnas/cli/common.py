"""Small helpers shared by the subcommands."""

from __future__ import annotations

import json
import math
import sys
from typing import Any



# Validation at the edge: after the subcommands register, every numeric option gets a checking
# type by its name (a bare ``int`` or ``float`` still rejects negatives, nan and inf), and every
# ``--out`` is checked to be a writable file or folder before any work starts.
NUMBER_TYPES: dict[str, str] = {
    # whole numbers >= 1
    **dict.fromkeys(("trials", "steps", "classes", "rounds", "limit", "samples", "threads", "workers", "batch",
                     "batch_size", "train_size", "val_size", "top", "finetune_steps", "port", "window"), "positive_int"),
    # image sides in pixels: >= 8 (the 8x8 digits are the smallest images mnas trains on)
    **dict.fromkeys(("resolution", "resolutions", "image_size"), "image_px"),
    "low_res": "low_res_px",  # 0 (off) or an image side >= 8
    # random seeds: 0 ... 2**32 - 1 (every generator mnas seeds takes them)
    **dict.fromkeys(("seed", "split_seed"), "seed_int"),
    # whole numbers >= 0
    **dict.fromkeys(("calibrate", "final_steps", "pretrain_steps", "warmup_steps"), "nonneg_int"),
    # finite numbers > 0
    **dict.fromkeys(("target_ms", "lr", "finetune_lr", "epochs", "budget"), "positive_float"),
    "gpus_per_trial": "nonneg_float",
    "delta": "open_fraction",
    **dict.fromkeys(("alpha", "beta"), "finite_float"),
}
# where one name means different things: (subcommand path..., dest) -> type
COMMAND_NUMBER_TYPES: dict[tuple[str, ...], str] = {
    ("latency", "explain", "top"): "nonneg_int",  # 0 = every op
}

def add_json_flag(p) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def _clean(obj: Any) -> Any:
    """Strict JSON: NaN and infinities become null (other tools' parsers reject them)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:  # numpy scalars
        return _clean(obj.item())
    return obj


def print_json(obj: Any) -> None:
    json.dump(_clean(obj), sys.stdout, indent=2, default=str, allow_nan=False)
    sys.stdout.write("\n")


# ---------------------------------------------------------------------- argparse types
# Each raises argparse.ArgumentTypeError, which argparse reports as one line naming the flag
# ("argument --trials: must be a whole number >= 1, got '0'") with exit code 2.


def _number(text: str, kind: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {kind} (nan and inf are not allowed), got {text!r}")
    return value


def _integer(text: str, kind: str) -> int:
    import argparse

    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None


def finite_float(text: str) -> float:
    """Any finite number (no nan, no inf)."""
    return _number(text, "a number")


def positive_float(text: str) -> float:
    """A finite number > 0 (``--target-ms``, ``--lr``, ``--epochs``)."""
    import argparse

    value = _number(text, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


positive_finite_float = positive_float


def nonneg_float(text: str) -> float:
    """A finite number >= 0 (``--gpus-per-trial``)."""
    import argparse

    value = _number(text, "a number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """A finite number in [0, 1] (a fraction)."""
    import argparse

    value = _number(text, "a fraction between 0 and 1")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a fraction between 0 and 1, got {text!r}")
    return value


def open_fraction(text: str) -> float:
    """A finite number in (0, 1) (NetAdapt's δ)."""
    import argparse

    value = _number(text, "a fraction between 0 and 1")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a fraction strictly between 0 and 1, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--trials``, ``--steps``, ``--classes``, ``--rounds``)."""
    import argparse

    value = _integer(text, "a whole number >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def nonneg_int(text: str) -> int:
    """A whole number >= 0 (``--seed``, ``--final-steps``, ``--low-res``)."""
    import argparse

    value = _integer(text, "a whole number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return value


MIN_IMAGE_PX = 8  # the smallest image side mnas trains on (the 8x8 digits)


def image_px(text: str) -> int:
    """An image side in pixels: a whole number >= 8 (``--image-size``, ``--resolution``)."""
    import argparse

    value = _integer(text, f"a whole number of pixels >= {MIN_IMAGE_PX}")
    if value < MIN_IMAGE_PX:
        raise argparse.ArgumentTypeError(f"must be a whole number of pixels >= {MIN_IMAGE_PX} (smaller images hold "
                                         f"no usable picture), got {text!r}")
    return value


def low_res_px(text: str) -> int:
    """0 (off) or an image side >= 8 (``--low-res``)."""
    import argparse

    value = _integer(text, f"0 or a whole number of pixels >= {MIN_IMAGE_PX}")
    if value != 0 and value < MIN_IMAGE_PX:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or a whole number of pixels >= {MIN_IMAGE_PX}, got {text!r}")
    return value


MAX_SEED = 2**32 - 1  # the largest seed every generator mnas seeds takes (numpy's legacy RandomState)


def seed_int(text: str) -> int:
    """A random seed: a whole number in [0, 2**32 - 1] (``--seed``)."""
    import argparse

    value = _integer(text, f"a whole number between 0 and {MAX_SEED}")
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be a whole number between 0 and {MAX_SEED} (2**32 - 1), got {text!r}")
    return value


def whole_int(text: str) -> int:
    """Any whole number (no float text like ``1.5``)."""
    return _integer(text, "a whole number")


def out_file_type(suffixes: tuple[str, ...] | None = None):
    """argparse type of an ``--out`` that names a file: not a folder, under a folder, a known suffix."""

    def out_file(text: str) -> str:
        import argparse

        from mnas.errors import MnasError
        from mnas.io import check_out_file

        try:
            check_out_file(text, "", suffixes)
        except MnasError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None
        return text

    return out_file


def out_dir_type(kind: str | None = None):
    """argparse type of an ``--out`` that names a run folder: missing or a folder, never a file (nor, given
    ``kind``, another command's run folder)."""

    def out_dir(text: str) -> str:
        import argparse

        from mnas.errors import MnasError
        from mnas.io import check_out_dir

        try:
            check_out_dir(text, "", kind)
        except MnasError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None
        return text

    return out_dir


def cache_file_type():
    """argparse type of a ``--cache FILE``: a writable file that is missing, empty or an mnas evaluation cache
    (never another program's database, e.g. a search's ``trials.db``)."""

    def cache_file(text: str) -> str:
        import argparse
        import sqlite3
        from pathlib import Path

        from mnas.errors import MnasError
        from mnas.io import check_out_file

        try:
            p = check_out_file(text, "")
        except MnasError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None
        if not p.is_file() or p.stat().st_size == 0:
            return text
        with open(p, "rb") as f:
            magic = f.read(16)
        if magic != b"SQLite format 3\x00":
            raise argparse.ArgumentTypeError(f"{text} is not an evaluation cache (not an SQLite file); give a new "
                                             "file name")
        try:
            con = sqlite3.connect(f"file:{Path(p).resolve()}?mode=ro", uri=True)
            try:
                tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'"))
            finally:
                con.close()
        except sqlite3.Error as e:
            raise argparse.ArgumentTypeError(f"{text}: not a readable SQLite file ({e})") from None
        if tables and tables != ["results"]:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            owner = " (an Optuna study: a search's trials)" if "studies" in tables else ""
            raise argparse.ArgumentTypeError(f"{text} is another database{owner}, tables {shown}; the evaluation "
                                             "cache would be written into it: give a new file name")
        return text

    return cache_file


def resume_dir_type(kind: str):
    """argparse type of a ``--resume RUN``: an existing folder holding a ``kind`` run (another command's run is
    named, with the command that resumes it)."""

    def resume_dir(text: str) -> str:
        import argparse
        from pathlib import Path

        from mnas.io import run_kind

        p = Path(text)
        if p.is_dir():
            other = run_kind(p)
            if other and other != kind:
                how = "run the same `mnas replay` command again" if other == "replay" else \
                    f"`mnas {other} --resume {text}`" if other in ("search", "netadapt") else "run it again"
                raise argparse.ArgumentTypeError(f"{text} holds a `mnas {other}` run, not a {kind} one "
                                                 f"(to continue it: {how})")
        elif p.exists():
            raise argparse.ArgumentTypeError(f"{text} is a file, not a run folder; give the folder the {kind} wrote")
        return text

    return resume_dir


# ---------------------------------------------------------------------- KEY=VALUE options
# `--evaluator-option`, `--eval-option`, `-o/--option`, `--strategy-option` and the same options in a
# config file are checked here, when the command line is read (before any run folder is made), against
# what the evaluator's / strategy's signature declares: the type of its annotation or default, and the
# range a flag of the same name has (mnas.cli.NUMBER_TYPES: `steps` >= 1, `lr` > 0, ...).

_EMPTY = object()


def _signature_spec(func, config_type=None) -> dict[str, tuple[Any, str]]:
    """name -> (default or _EMPTY, annotation text) of ``func``'s parameters (and a typed config dataclass's fields)."""
    import dataclasses
    import inspect

    def text(ann) -> str:
        if ann is inspect.Parameter.empty:
            return ""
        return ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))

    out: dict[str, tuple[Any, str]] = {}
    for name, p in inspect.signature(func).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = (_EMPTY if p.default is inspect.Parameter.empty else p.default, text(p.annotation))
    if config_type is not None and dataclasses.is_dataclass(config_type):
        for f in dataclasses.fields(config_type):
            out[f.name] = (_EMPTY if f.default is dataclasses.MISSING else f.default, text(f.type))
    return out


def evaluator_option_spec(kind: str) -> dict[str, tuple[Any, str]]:
    """The options evaluator ``kind`` takes: name -> (default, annotation text)."""
    import importlib

    from mnas.accuracy.base import EVALUATORS
    from mnas.errors import MnasError

    if kind not in EVALUATORS:
        raise MnasError(f"unknown evaluator {kind!r} (choose one of {', '.join(EVALUATORS)})")
    module, _, name = EVALUATORS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    spec = _signature_spec(cls.__init__, getattr(cls, "Config", None))
    spec.pop("space", None)  # given by --space, not as an option
    return spec


def strategy_option_spec(name: str) -> dict[str, tuple[Any, str]]:
    """The options strategy ``name`` takes: name -> (default, annotation text)."""
    import inspect

    from mnas.search.strategies import _loader  # the registry's own lookup (raises on an unknown name)

    factory = _loader(name)
    keyword_only = {k for k, p in inspect.signature(factory).parameters.items() if p.kind is p.KEYWORD_ONLY}
    return {k: v for k, v in _signature_spec(factory).items()
            if k in keyword_only and k not in ("space", "seed", "multi_objective")}


_TYPE_NAMES = {"int": "int", "float": "float", "bool": "bool", "str": "str", "Path": "str", "dict": "dict",
               "list": "list", "tuple": "list", "None": "None"}
_FRACTION_WORDS = ("prob", "decay", "smoothing", "fraction")


def _kinds(default: Any, annotation: str) -> set[str] | None:
    """The value kinds an option takes ({"int", "None"}, ...), or None when its declaration says nothing usable."""
    import re

    if annotation:
        tokens = [t.strip() for t in re.split(r"[|\[\],]", annotation) if t.strip()]
        tokens = [t for t in tokens if not t.startswith(("Optional", "Union"))]
        if tokens and all(t in _TYPE_NAMES for t in tokens):
            return {_TYPE_NAMES[t] for t in tokens}
        if annotation.startswith(("Optional[", "Union[")):
            return None
        if tokens:
            return None  # a type this check does not know (a class, Any, a Literal): leave it to the component
    if default is _EMPTY or default is None:
        return None
    for kind, types in (("bool", bool), ("int", int), ("float", float), ("str", str), ("dict", dict),
                        ("list", (list, tuple))):
        if isinstance(default, types):
            return {kind}
    return None


def option_problem(name: str, value: Any, default: Any, annotation: str) -> str | None:
    """What is wrong with ``value`` for option ``name`` (``must be a whole number, got 'abc'``), or None."""
    import argparse

    from mnas.configs import _KINDS

    kinds = _kinds(default, annotation)
    if value is None:
        if kinds is None or "None" in kinds or default is None:
            return None
        return "must not be null"
    if kinds is not None:
        known = [k for k in kinds if k != "None"]
        if known and not any(_KINDS[k][1](value) for k in known):
            if "float" in known and isinstance(value, float):
                return f"must be a finite number, got {value!r}"
            return f"must be {' or '.join(_KINDS[k][0] for k in known)}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value):
        return f"must be a finite number, got {value!r}"

    checker = NUMBER_TYPES.get(name)
    if checker is not None:
        try:
            globals()[checker](repr(value) if isinstance(value, float) else str(value))
        except argparse.ArgumentTypeError as e:
            return str(e)
    if isinstance(default, (int, float)) and not isinstance(default, bool) and default >= 0 and value < 0:
        return f"must be >= 0 (as its default, {default!r}), got {value!r}"
    if any(w in name for w in _FRACTION_WORDS) and not 0 <= value <= 1:
        return f"must be a fraction between 0 and 1, got {value!r}"
    return None


def check_options(what: str, options: dict, spec: dict[str, tuple[Any, str]], origin=None) -> None:
    """Refuse (one :class:`MnasError` line) an option ``spec`` does not list or a value of the wrong type or range.

    ``what`` names the component (``strategy 'evolution'``, ``train evaluator``); ``origin(key)`` says where
    the option came from (``--strategy-option population_size=abc``, ``cfg.yaml: strategy_options``).
    """
    from mnas.errors import MnasError

    def where(key: str) -> str:
        return origin(key) if origin else f"option {key}={options[key]!r}"

    unknown = sorted(set(options) - set(spec))
    if unknown:
        accepted = ", ".join(sorted(spec)) or "none"
        raise MnasError(f"{where(unknown[0])}: {what}: unknown option(s) {', '.join(unknown)} (allowed: {accepted})")
    for key, value in options.items():
        default, annotation = spec[key]
        problem = option_problem(key, value, default, annotation)
        if problem:
            shown = "" if default is _EMPTY else f"; default {default!r}"
            raise MnasError(f"{where(key)}: {what} option {key} {problem}{shown}")


def space_evaluator_help() -> str:
    """``imagenet on v3_small, v3_large, mnasnet; anb on anb; predictor elsewhere`` from the registry."""
    from mnas.accuracy.base import FALLBACK_EVALUATOR, SPACE_EVALUATORS

    by_ev: dict[str, list[str]] = {}
    for space, ev in SPACE_EVALUATORS.items():
        by_ev.setdefault(ev, []).append(space)
    return "; ".join(f"{ev} on {', '.join(sp)}" for ev, sp in by_ev.items()) + f"; {FALLBACK_EVALUATOR} elsewhere"
