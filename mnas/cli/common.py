"""Small helpers shared by the subcommands."""

from __future__ import annotations

import json
import math
import sys
from typing import Any


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


def out_dir_type():
    """argparse type of an ``--out`` that names a run folder: missing or a folder, never a file."""

    def out_dir(text: str) -> str:
        import argparse

        from mnas.errors import MnasError
        from mnas.io import check_out_dir

        try:
            check_out_dir(text, "")
        except MnasError as e:
            raise argparse.ArgumentTypeError(str(e).strip()) from None
        return text

    return out_dir
