"""Accel-NASBench's choices: the per-block ``[e, k, l, se]`` of a network, validated and encoded.

A network's choices are an ``(7, 4)`` integer array ``[e, k, l, se]`` per block, its
compact encoding seven ``EKLS`` groups joined by ``-`` (EfficientNet-B0:
``1311-6321-6521-6331-6531-6541-6311``). :func:`choices_of` gets them from an
encoding, from a sample of the ``anb`` space or from a :class:`~mnas.arch.Network`
(inverse decoding), so evaluators and devices take a network however it was given;
:func:`network_of` goes the other way (needs ``search_spaces/anb.yaml``).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from mnas.errors import MnasError

BLOCKS = 7
STRIDES = (1, 2, 2, 2, 1, 2, 1)
CIN = (32, 16, 24, 40, 80, 112, 192)
COUT = (16, 24, 40, 80, 112, 192, 320)
STEM_OUT = 32
HEAD_CONV = 1280
RESOLUTION = 224
EXPANSIONS = (1, 4, 6)
KERNELS = (3, 5)
SE = (0, 1)
MAX_LAYERS = (3, 3, 3, 3, 3, 4, 3)
FIELDS = ("e", "k", "l", "se")
CHOICE_COLUMNS = tuple(f"block{b}_{f}" for b in range(BLOCKS) for f in FIELDS)
EFFICIENTNET_B0 = "1311-6321-6521-6331-6531-6541-6311"


def _valid_mask(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c).reshape(-1, BLOCKS, 4)
    ok = np.isin(c[:, :, 0], EXPANSIONS) & np.isin(c[:, :, 1], KERNELS) & np.isin(c[:, :, 3], SE)
    ok &= (c[:, :, 2] >= 1) & (c[:, :, 2] <= np.array(MAX_LAYERS))
    return np.asarray(ok.all(axis=1))


def check_choices(c: Any) -> np.ndarray:
    """``c`` as a validated ``(7, 4)`` int array; an error names the block and field."""
    a = np.asarray(c, dtype=np.int64)
    if a.shape != (BLOCKS, 4):
        raise MnasError(f"anb choices: expected 7 blocks of (e, k, l, se), got shape {a.shape}")
    for b, (e, k, l, se) in enumerate(a):
        if e not in EXPANSIONS:
            raise MnasError(f"anb block {b}: expansion {e} is not one of {EXPANSIONS}")
        if k not in KERNELS:
            raise MnasError(f"anb block {b}: kernel {k} is not one of {KERNELS}")
        if not 1 <= l <= MAX_LAYERS[b]:
            raise MnasError(f"anb block {b}: {l} layers is outside 1..{MAX_LAYERS[b]}"
                            + (" (only block 5 takes 4)" if l == 4 else ""))
        if se not in SE:
            raise MnasError(f"anb block {b}: squeeze-excite {se} is not 0 or 1")
    return a


def parse_code(code: str) -> np.ndarray:
    """``1311-6321-...`` (seven ``EKLS`` groups) -> ``(7, 4)`` array; a bad group is named."""
    text = str(code).strip()
    groups = text.split("-")
    if len(groups) != BLOCKS:
        raise MnasError(f"anb encoding {text!r} has {len(groups)} group(s), expected 7 groups EKLS joined by '-' "
                        f"(e.g. EfficientNet-B0: {EFFICIENTNET_B0})")
    rows = []
    for b, g in enumerate(groups):
        if len(g) != 4 or not g.isdigit():
            raise MnasError(f"anb encoding {text!r}: group {b + 1} {g!r} is not four digits EKLS "
                            "(expansion 1/4/6, kernel 3/5, layers, squeeze-excite 0/1)")
        rows.append([int(ch) for ch in g])
    try:
        return check_choices(rows)
    except MnasError as e:
        raise MnasError(f"anb encoding {text!r}: {str(e).removeprefix('anb ')}") from None


def format_code(c: Any) -> str:
    a = np.asarray(c, dtype=np.int64).reshape(BLOCKS, 4)
    return "-".join("".join(str(int(v)) for v in row) for row in a)


def looks_like_code(text: str) -> bool:
    t = str(text).strip()
    return t.count("-") == BLOCKS - 1 and t.replace("-", "").isdigit()


def pack(choices: np.ndarray) -> np.ndarray:
    """One int64 per network (mixed radix over the option indices), for vectorised lookups."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    e = np.searchsorted(np.array(EXPANSIONS), c[:, :, 0])
    k = (c[:, :, 1] == 5).astype(np.int64)
    digit = ((e * 2 + k) * 4 + (c[:, :, 2] - 1)) * 2 + c[:, :, 3]  # 0..47 per block
    return (digit * (48 ** np.arange(BLOCKS, dtype=np.int64))).sum(axis=1)


def choices_of_network(net) -> np.ndarray:
    """Inverse decoding: the ``(7, 4)`` choices of a network built like the benchmark's.

    Walks the blocks, groups consecutive blocks by output channels into the seven
    blocks of EfficientNet-B0's backbone, and reads e = exp / cin of each block's
    first layer, its kernel, its number of layers and se > 0. An error names the
    first thing that does not fit. (Stem, head and activation are checked by
    :func:`choices_of` against the ``anb`` space's own decoding when it is available.)
    """
    from mnas.arch import Bneck, format_block

    why = "not an Accel-NASBench (anb) network"
    if net.stem.out != STEM_OUT or net.stem.stride != 2 or net.stem.kernel != 3:
        raise MnasError(f"{why}: its stem must be a 3x3 stride-2 conv to {STEM_OUT} channels, got {format_block(net.stem, 'stem')}")
    if net.resolution != RESOLUTION:
        raise MnasError(f"{why}: resolution {net.resolution}, the benchmark trained at {RESOLUTION}")
    groups: list[list] = []
    for i, b in enumerate(net.blocks):
        if not groups or b.out != groups[-1][0][1].out:
            groups.append([])
        groups[-1].append((i, b))
    outs = [g[0][1].out for g in groups]
    if tuple(outs) != COUT:
        raise MnasError(f"{why}: its blocks output {'/'.join(map(str, outs))} channels, expected {'/'.join(map(str, COUT))}")
    rows = []
    for s, group in enumerate(groups):
        cin = CIN[s]
        first = group[0][1]
        if len(group) > MAX_LAYERS[s]:
            raise MnasError(f"{why}: block {s} has {len(group)} layers, at most {MAX_LAYERS[s]}")
        for j, (i, b) in enumerate(group):
            lin = cin if j == 0 else COUT[s]
            if not isinstance(b, Bneck):
                raise MnasError(f"{why}: layer {i} ({format_block(b)}) is not an MBConv (ir) block")
            stride = STRIDES[s] if j == 0 else 1
            if b.stride != stride:
                raise MnasError(f"{why}: layer {i} ({format_block(b)}) has stride {b.stride}, expected {stride}")
            if b.exp % lin:
                raise MnasError(f"{why}: layer {i} ({format_block(b)}): expansion width {b.exp} is not a multiple of its input {lin}")
            if b.exp // lin != first.exp // cin or b.kernel != first.kernel or (b.se > 0) != (first.se > 0):
                raise MnasError(f"{why}: layer {i} ({format_block(b)}) differs from the first layer of block {s} "
                                "in expansion, kernel or squeeze-excite (the benchmark shares them per block)")
        e = first.exp // cin
        rows.append([e, first.kernel, len(group), int(first.se > 0)])
    try:
        return check_choices(rows)
    except MnasError as e:
        raise MnasError(f"{why}: {str(e).removeprefix('anb ')}") from None


_SPACE: list = []


def anb_space():
    """The ``anb`` search space, or None where it is not installed (checked once)."""
    if not _SPACE:
        try:
            from mnas.space import load_space

            _SPACE.append(load_space("anb"))
        except (MnasError, ImportError, FileNotFoundError):
            _SPACE.append(None)
    return _SPACE[0]


_STAGE_BLOCKS: dict[tuple[int, int], tuple] = {}


def network_of(c: Any):
    """The ``anb`` space's network of choices ``c`` (needs ``search_spaces/anb.yaml``).

    Fast: a block's layers depend only on its own choices (its input width is fixed), so the
    network is assembled from per-block layer tuples, each decoded once by the space.
    """
    from mnas.arch import Network

    space = anb_space()
    if space is None:
        raise MnasError("the anb search space (search_spaces/anb.yaml) is not available in this installation")
    a = check_choices(c)
    digits = block_digits(a[None])[0]
    blocks: list = []
    for b in range(BLOCKS):
        key = (b, int(digits[b]))
        if key not in _STAGE_BLOCKS:
            ref = space.decode(space.decode_string(format_code(a)))
            start = sum(int(x) for x in a[:b, 2])
            for bb in range(BLOCKS):  # every block of this decoding, while we have it
                s0 = sum(int(x) for x in a[:bb, 2])
                _STAGE_BLOCKS[(bb, int(digits[bb]))] = tuple(ref.blocks[s0:s0 + int(a[bb, 2])])
            assert _STAGE_BLOCKS[key] == tuple(ref.blocks[start:start + int(a[b, 2])])
        blocks.extend(_STAGE_BLOCKS[key])
    net = Network(stem=space.stem, blocks=tuple(blocks), head=space.head, resolution=space.resolution)
    if len(_NET_CHOICES) >= _NET_CHOICES_MAX:
        _NET_CHOICES.clear()
    _NET_CHOICES[net] = a  # choices_of(net) later is a dictionary hit: a batch decoded here is not decoded again
    return net


_NET_CHOICES: dict = {}
_NET_CHOICES_MAX = 200_000


def choices_of(x: Any, space: Any = None, *, strict: bool = True) -> np.ndarray:
    """``(7, 4)`` choices of ``x``: a compact encoding, a sample of the anb space, a Network, or an array.

    With ``strict`` a Network must equal the ``anb`` space's own decoding of its
    choices (stem, head, activations, squeeze-excite widths); skipped when the space
    is not installed.
    """
    from mnas.arch import Network

    if isinstance(x, str):
        if looks_like_code(x):
            return parse_code(x)
        from mnas.resolve import load_arch

        x = load_arch(x)
    if isinstance(x, dict):
        sp = space if space is not None else anb_space()
        if sp is None:
            raise MnasError("a sample needs the anb search space (search_spaces/anb.yaml)")
        code = sp.encode_string(x)
        if looks_like_code(code):
            return parse_code(code)
        return choices_of(sp.decode(x), strict=False)
    if isinstance(x, Network):
        known = _NET_CHOICES.get(x)
        if known is not None:  # built by network_of: in the space by construction
            return known.copy()
        c = choices_of_network(x)
        if strict:
            if anb_space() is not None:
                ref = network_of(c)
                if ref != x:
                    diff = _first_difference(x, ref)
                    raise MnasError(f"not an Accel-NASBench (anb) network: {diff}")
        return c
    return check_choices(x)


def _first_difference(net, ref) -> str:
    from mnas.arch import format_block, format_head

    if net.stem != ref.stem:
        return f"stem {format_block(net.stem, 'stem')}, the benchmark's is {format_block(ref.stem, 'stem')}"
    for i, (a, b) in enumerate(zip(net.blocks, ref.blocks)):
        if a != b:
            return f"layer {i} is {format_block(a)}, the benchmark's is {format_block(b)}"
    if net.head != ref.head:
        return f"head {format_head(net.head)}, the benchmark's is {format_head(ref.head)}"
    return f"it differs from the benchmark's decoding {ref}"


def choices_many(items: Sequence[Any], space: Any = None) -> np.ndarray:
    """``(n, 7, 4)`` choices of many items (see :func:`choices_of`)."""
    if isinstance(items, np.ndarray) and items.ndim == 3:
        return items.astype(np.int64)
    if not len(items):
        return np.zeros((0, BLOCKS, 4), dtype=np.int64)
    return np.stack([choices_of(x, space) for x in items])


def block_digits(choices: np.ndarray) -> np.ndarray:
    """``(n, 7)``: per block the index 0..47 of its (e, k, l, se) combination (the additive tables' column)."""
    c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
    e = np.searchsorted(np.array(EXPANSIONS), c[:, :, 0])
    return ((e * 2 + (c[:, :, 1] == 5)) * 4 + (c[:, :, 2] - 1)) * 2 + c[:, :, 3]
