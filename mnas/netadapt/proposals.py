"""NetAdapt's proposals, on architecture data alone (no torch).

A network's channel widths are a handful of *slots* that can shrink independently:

- **expansion** slots (kind ``exp``): the expanded width ``Bneck.exp`` of one
  inverted-residual block that has a 1×1 expansion layer, and the head's 1×1
  conv (MobileNetV3's last-stage expansion, ``head.conv``);
- **group** slots (kind ``group``): the width of one tensor that flows through a
  *residual group*, the run of consecutive layers connected by residuals: the
  layer that produces the width (the stem, or a block that is not residual)
  plus every residual block after it. All of them write the same channels, so
  they shrink together; the block after the group (or the head) reads them.

Rules that keep every proposal a valid network with the seed's topology:

- A block without an expansion layer (``exp == cin``, e.g. MobileNetV3's first
  block) has its depthwise width tied to its input: it follows its input group.
- Squeeze-excite follows the expanded width: a block whose squeeze width is
  MobileNetV3's ``se_channels(exp)`` gets ``se_channels(new_exp)``; any other
  block (MnasNet sets it from the input width) keeps its own ratio,
  ``max(1, round(se * new_exp / exp))``.
- A candidate width that would change the topology (a residual appearing because
  a block's input now equals its output, or an expansion layer vanishing because
  ``exp`` now equals the input) is skipped; the next smaller width is tried.

Widths are multiples of 8 (``STEP``), never below ``min_width`` (8).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator, cast

from mnas.arch import Bneck, Network, se_channels
from mnas.errors import MnasError

STEP = 8
MIN_WIDTH = 8
STEM = -1
HEAD = "head"


@dataclass(frozen=True)
class Group:
    """Layers (``-1`` = stem) writing one tensor: the producer, then its residual blocks."""

    members: tuple[int, ...]
    width: int

    @property
    def producer(self) -> int:
        return self.members[0]

    @property
    def name(self) -> str:
        return "+".join(layer_name(m) for m in self.members)


@dataclass(frozen=True)
class Slot:
    """One independently shrinkable width: ``kind`` is ``exp`` or ``group``; ``target`` a block index,
    ``"head"``, or a group's producer index."""

    kind: str
    target: int | str
    layers: str  # readable layer names, e.g. "b4", "head", "b3+b4+b5"
    width: int

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.layers}"


@dataclass(frozen=True)
class Proposal:
    """A slot shrunk to ``after`` channels: the smallest cut saving at least δ of predicted latency."""

    slot: Slot
    after: int
    net: Network
    latency_ms: float

    @property
    def kind(self) -> str:
        return self.slot.kind

    @property
    def name(self) -> str:
        return self.slot.name


def layer_name(index: int) -> str:
    return "stem" if index == STEM else f"b{index}"


def residual_groups(net: Network) -> list[Group]:
    """The network's tensors in order; each group's members share one channel width."""
    groups: list[list[int]] = []
    widths: list[int] = []
    for layer in net.layers():
        if layer.index != STEM and layer.residual:
            groups[-1].append(layer.index)
        else:
            groups.append([layer.index])
            widths.append(layer.cout)
    return [Group(tuple(g), w) for g, w in zip(groups, widths)]


def slots(net: Network) -> list[Slot]:
    """Every shrinkable width of ``net``: expansion layers first (network order), then groups."""
    out = [Slot("exp", layer.index, layer_name(layer.index), cast(Bneck, layer.block).exp)
           for layer in net.layers() if layer.has_expand]
    if net.head.conv:
        out.append(Slot("exp", HEAD, HEAD, net.head.conv))
    out += [Slot("group", g.producer, g.name, g.width) for g in residual_groups(net)]
    return out


def topology(net: Network) -> tuple:
    """What a width change must not alter: per layer, residual or not, expansion layer or not."""
    return tuple((layer.residual, layer.has_expand) for layer in net.layers())


def _se_for(block: Bneck, exp: int) -> int:
    if not block.se or exp == block.exp:
        return block.se
    if block.se == se_channels(block.exp):
        return se_channels(exp)
    return max(1, round(block.se * exp / block.exp))


def _with_exp(block: Bneck, exp: int) -> Bneck:
    return dataclasses.replace(block, exp=exp, se=_se_for(block, exp))


def set_width(net: Network, slot: Slot, width: int) -> Network:
    """``net`` with ``slot`` at ``width`` channels (and everything tied to it); topology not checked."""
    if slot.kind == "exp":
        if slot.target == HEAD:
            return net.replace(head=dataclasses.replace(net.head, conv=width))
        blocks = list(net.blocks)
        i = int(slot.target)
        blocks[i] = _with_exp(cast(Bneck, blocks[i]), width)
        return net.replace(blocks=tuple(blocks))
    if slot.kind != "group":
        raise ValueError(f"unknown slot kind {slot.kind!r}")
    group = next((g for g in residual_groups(net) if g.producer == slot.target), None)
    if group is None:
        raise ValueError(f"{slot.name}: no group starts at {layer_name(int(slot.target))}")
    members = set(group.members)
    stem = dataclasses.replace(net.stem, out=width) if STEM in members else net.stem
    blocks = list(net.blocks)
    for layer in net.layers():
        i, b = layer.index, layer.block
        if i == STEM:
            continue
        reads_group = (i - 1) in members  # the block's input is this group's tensor
        if i in members:
            b = dataclasses.replace(b, out=width)
        if reads_group and isinstance(b, Bneck) and not layer.has_expand:
            b = _with_exp(b, width)  # depthwise width tied to the input
        blocks[i] = b
    return net.replace(stem=stem, blocks=tuple(blocks))


def candidate_widths(width: int, min_width: int = MIN_WIDTH, step: int = STEP) -> list[int]:
    """Multiples of ``step`` below ``width``, largest first, down to ``min_width``."""
    top = (width - 1) // step * step
    return [w for w in range(top, min_width - 1, -step)]


def _valid(net: Network, topo: tuple, slot: Slot, width: int) -> Network | None:
    cand = set_width(net, slot, width)
    return cand if topology(cand) == topo else None


def check_latency_table(predictor, net: Network) -> None:
    """Raise the table's own error (missing keys + the command to measure them) if ``net`` has unknown ops."""
    missing = getattr(predictor, "missing", None)
    if missing is not None and missing(net):
        predictor.predict(net)  # the predictor's error lists the keys and the command
        raise MnasError(f"latency table for {predictor.device} lacks ops of {net}")


def propose(net: Network, predictor, delta_ms: float, min_width: int = MIN_WIDTH,
            latency_ms: float | None = None) -> list[Proposal]:
    """One proposal per slot: its smallest cut (multiples of 8) whose predicted latency drops by >= ``delta_ms``.

    Slots that cannot save ``delta_ms`` even at ``min_width`` give no proposal.
    """
    base = predictor.predict(net) if latency_ms is None else latency_ms
    topo = topology(net)
    out = []
    for slot in slots(net):
        for width in candidate_widths(slot.width, min_width):
            cand = _valid(net, topo, slot, width)
            if cand is None:
                continue
            check_latency_table(predictor, cand)
            lat = float(predictor.predict(cand))
            if base - lat >= delta_ms:
                out.append(Proposal(slot, width, cand, lat))
                break
    return out


def minimal_network(net: Network, min_width: int = MIN_WIDTH, first: str = "exp") -> Network:
    """Every slot at its smallest width that keeps the topology, slots of kind ``first`` shrunk first.

    Widths tied by topology (an expansion may not fall to its input width) make
    the result depend on the order; :func:`mnas.netadapt.loop.minimum_latency` tries both.
    """
    topo = topology(net)
    for _ in range(100):
        changed = False
        for slot in sorted(slots(net), key=lambda s: s.kind != first):
            for width in reversed(candidate_widths(slot.width, min_width)):
                cand = _valid(net, topo, slot, width)
                if cand is not None:
                    net, changed = cand, True
                    break
        if not changed:
            return net
    return net


def iter_slots_changed(old: Network, new: Network) -> Iterator[tuple[Slot, int]]:
    """(slot of ``old``, new width) for every slot whose width differs in ``new`` (same topology)."""
    new_slots = {s.name: s for s in slots(new)}
    for s in slots(old):
        n = new_slots.get(s.name)
        if n is not None and n.width != s.width:
            yield s, n.width

