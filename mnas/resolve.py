"""Turn what a user typed (a reference name, a file, or a text form) into a Network."""

from __future__ import annotations

from pathlib import Path

from mnas import zoo
from mnas.arch import Network, load_network, parse_network
from mnas.errors import MnasError


def load_arch(spec: str, resolution: int | None = None) -> Network:
    """``spec`` is a registered name (``mobilenet_v3_small``), a YAML/JSON/text file, or a text form."""
    spec = spec.strip()
    if not spec:
        raise MnasError("empty architecture: give a reference name (see `mnas arch list`), a file, or a text form")
    if spec in zoo.names():
        net = zoo.get(spec)
    elif Path(spec).suffix in (".yaml", ".yml", ".json", ".txt", ".arch") or Path(spec).is_file():
        net = load_network(spec)
    elif " " in spec or spec.startswith("r") and "stem_" in spec:
        net = parse_network(spec)
    else:
        zoo.get(spec)  # raises with a did-you-mean hint
        raise AssertionError("unreachable")
    return net.with_resolution(resolution) if resolution else net
