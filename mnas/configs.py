"""One way to turn a typed config (a dataclass) into a mapping and back, rejecting unknown fields."""

from __future__ import annotations

import dataclasses
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
        try:
            return cls(**d)
        except TypeError as e:
            raise MnasError(f"{where}: {e}") from None
