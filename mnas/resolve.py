"""Turn what a user typed (a reference name, a file, or a text form) into a Network."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mnas import zoo
from mnas.arch import Network, load_network, parse_network
from mnas.errors import MnasError

if TYPE_CHECKING:  # annotations only
    from mnas.space import SearchSpace


def _is_file(spec: str) -> bool:
    try:
        return Path(spec).is_file()
    except OSError:  # e.g. a text form longer than a file name may be
        return False


def load_arch(spec: str, resolution: int | None = None, space: SearchSpace | None = None) -> Network:
    """``spec`` is a registered name (``mobilenet_v3_small``), a YAML/JSON/text file, or a text form.

    With a search ``space`` it may also be that space's compact encoding (``22212220`` for
    NAS-Bench-Macro, ``1311-6321-6521-6331-6531-6541-6311`` for ``anb``).
    """
    spec = spec.strip()
    if not spec:
        raise MnasError("empty architecture: give a reference name (see `mnas arch list`), a file, or a text form")
    if space is not None and spec not in zoo.names() and not _is_file(spec) and (space.is_code(spec) or spec.isdigit()):
        net = space.decode(space.decode_string(spec))
    elif space is None and re.fullmatch(r"\d{4}(-\d{4}){6}", spec):
        raise MnasError(f"{spec!r} looks like an Accel-NASBench (anb) encoding: give its space with --space anb")
    elif spec in zoo.names():
        net = zoo.get(spec)
    elif Path(spec).suffix in (".yaml", ".yml", ".json", ".txt", ".arch") or _is_file(spec):
        net = load_network(spec)
    elif " " in spec or spec.startswith("r") and "stem_" in spec:
        net = parse_network(spec)
    else:
        zoo.get(spec)  # raises with a did-you-mean hint
        raise AssertionError("unreachable")
    return net.with_resolution(resolution) if resolution else net
