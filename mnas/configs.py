"""One way to turn a typed config (a dataclass) into a mapping and back, rejecting unknown fields."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, TypeVar

from mnas.errors import MnasError

T = TypeVar("T", bound="DictConfig")


class DictConfig:
    """Mixin for dataclass configs saved next to their results (``config.yaml``) and loaded back."""

    _field_noun = "field"  # what an entry is called in error messages ("setting" for searches)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[T], d: Any, where: str = "config") -> T:
        if not isinstance(d, dict):
            raise MnasError(f"{where}: expected a mapping of settings")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise MnasError(f"{where}: unknown {cls._field_noun}(s) {unknown} (allowed: {', '.join(sorted(names))})")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key, value in d.items():
            _check_type(key, value, fields[key].type, where)
        try:
            return cls(**d)
        except TypeError as e:
            raise MnasError(f"{where}: {e}") from None
        except MnasError as e:
            if not _is_file(where) or str(e).startswith(where):
                raise
            # a check written for the flags (`--trials must be >= 1`) names the file and its field instead
            text = re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_")
                          if m.group(1).replace("-", "_") in names else m.group(0), str(e))
            raise MnasError(f"{where}: {text}") from None


def _is_file(where: str) -> bool:
    """Whether ``where`` (the origin given to :meth:`DictConfig.from_dict`) names a file rather than a source of flags."""
    import os

    return where.endswith((".yaml", ".yml", ".json")) or os.sep in where


_KINDS: dict[str, tuple[str, Any]] = {
    "int": ("a whole number", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
              and math.isfinite(v)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "dict": ("a mapping", lambda v: isinstance(v, dict)),
    "list": ("a list", lambda v: isinstance(v, list)),
}


def _check_type(name: str, value: Any, annotation: Any, where: str) -> None:
    """Reject a config value whose type does not match the field's (e.g. ``trials: 1.5``, ``target_ms: .nan``)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    parts = [p.strip() for p in text.split("|")]
    if value is None and "None" in parts:
        return
    known = [p for p in parts if p in _KINDS]
    if len(known) != len([p for p in parts if p != "None"]):
        return  # a type this check does not know: leave it to the dataclass
    if not any(_KINDS[p][1](value) for p in known):
        expected = " or ".join(_KINDS[p][0] for p in known) + (" (or null)" if "None" in parts else "")
        raise MnasError(f"{where}: {name} must be {expected}, got {value!r}")
