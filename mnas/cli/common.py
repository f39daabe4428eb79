"""Small helpers shared by the subcommands."""

from __future__ import annotations

import json
import sys
from typing import Any


def add_json_flag(p) -> None:
    p.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
