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
