"""Architectures as plain, frozen, typed data.

A :class:`Network` is a stem convolution, a sequence of blocks and a head, at an
input resolution. Blocks do not store their input channels: those follow from
the previous block, and :meth:`Network.layers` derives every shape in one place
(the builder, the counters and the latency keys all read it from there).

The compact text form is a *view* of the same value: one token per layer, e.g.::

    r224 stem_k3_c16_s2_hs ir_k3_e16_c16_se8_re_s2 ir_k3_e72_c24_re_s2 ... head_c576_hs_f1024_hs_d0.2

and ``parse(format(net)) == net`` for every network. An unknown or malformed
token is an error naming the token.

Token grammar (fields may come in any order; :func:`format_network` writes the
canonical order shown):

========  =============================================================
``stem``  ``stem_k{kernel}_c{out}_s{stride}_{act}``  first convolution
``conv``  ``conv_k{kernel}_c{out}_s{stride}_{act}``  regular conv + BN + act
``ds``    ``ds_k{kernel}_c{out}_s{stride}_{act}``    depthwise-separable (MobileNetV1):
          depthwise + BN + act, pointwise + BN + act
``ir``    ``ir_k{kernel}_e{expanded}_c{out}[_se{squeeze}]_{act}_s{stride}[_nr]``
          inverted residual ("bneck"): 1x1 expand (omitted when expanded ==
          input channels), depthwise, optional squeeze-excite with ``squeeze``
          hidden channels, linear 1x1 projection; residual when stride 1 and
          in == out, unless ``nr`` (no residual)
``head``  ``head[_c{conv}_{act}][_f{hidden}_{act}]_d{dropout}``: optional 1x1
          conv + BN + act before pooling, global average pooling, optional
          fully-connected hidden layer + act, dropout, classifier
========  =============================================================

Activations: ``re`` (ReLU), ``r6`` (ReLU6), ``hs`` (h-swish), ``sw`` (swish / SiLU,
``x * sigmoid(x)``, EfficientNet's), ``lin`` (none). The activation of an ``ir``
block also picks its squeeze-excite: ``sw`` blocks squeeze with swish and gate with
a sigmoid (EfficientNet), every other activation squeezes with ReLU and gates with
a hard sigmoid (MobileNetV3).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

from mnas.errors import MnasError

KERNELS = (1, 3, 5, 7)
STRIDES = (1, 2)


class Act(str, enum.Enum):
    """Non-linearity after a convolution."""

    RELU = "re"
    RELU6 = "r6"
    HSWISH = "hs"
    SWISH = "sw"
    NONE = "lin"


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never more than 10 % down.

    Exactly the rule of the MobileNet reference code (TF slim ``_make_divisible``,
    torchvision ``_make_divisible``).
    """
    if min_value is None:
        min_value = divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def se_channels(expanded: int, ratio: float = 0.25, divisor: int = 8) -> int:
    """MobileNetV3's squeeze width: ``make_divisible(expanded // 4, 8)`` for ratio 1/4."""
    return make_divisible(int(expanded * ratio), divisor)


def se_channels_input(cin: int, ratio: float = 0.25) -> int:
    """EfficientNet's squeeze width: ``max(1, int(cin * 0.25))`` of the block's *input* channels.

    The rule of EfficientNet's reference code and of torchvision's ``MBConv``
    (``max(1, input_channels // 4)``), which Accel-NASBench's model builder uses.
    """
    return max(1, int(cin * ratio))


def _check_ints(where: str, **values) -> None:
    """Integer fields must hold ints: ``channels: 16.5`` or ``kernel: true`` is an error, not a network."""
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise MnasError(f"{where}: {name} must be a whole number, got {v!r}")


def _check_common(where: str, kernel: int, out: int, stride: int) -> None:
    _check_ints(where, kernel=kernel, out=out, stride=stride)
    if kernel not in KERNELS:
        raise MnasError(f"{where}: kernel {kernel} is not allowed (choose one of {list(KERNELS)})")
    if stride not in STRIDES:
        raise MnasError(f"{where}: stride {stride} is not allowed (choose 1 or 2)")
    if out < 1:
        raise MnasError(f"{where}: output channels must be positive, got {out}")


@dataclass(frozen=True)
class Conv:
    """Regular convolution + batch norm + activation (stems, MnasNet's "conv" op)."""

    out: int
    kernel: int = 3
    stride: int = 1
    act: Act = Act.RELU
    op = "conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "act", Act(self.act))
        _check_common(self.op, self.kernel, self.out, self.stride)


@dataclass(frozen=True)
class DepthSep:
    """MobileNetV1 block: depthwise k×k + BN + act, pointwise 1×1 + BN + act."""

    out: int
    kernel: int = 3
    stride: int = 1
    act: Act = Act.RELU
    op = "ds"

    def __post_init__(self) -> None:
        object.__setattr__(self, "act", Act(self.act))
        _check_common(self.op, self.kernel, self.out, self.stride)


@dataclass(frozen=True)
class Bneck:
    """Inverted-residual bottleneck (MobileNetV2/V3 "bneck", MnasNet "MBConv").

    ``exp`` is the expanded width in channels (not a ratio: MobileNetV3's widths
    such as 88 or 184 are no integer multiple of their input). ``se`` is the
    squeeze-excite hidden width, 0 for none.
    """

    out: int
    exp: int
    kernel: int = 3
    stride: int = 1
    se: int = 0
    act: Act = Act.RELU
    skip: bool = True
    op = "ir"

    def __post_init__(self) -> None:
        object.__setattr__(self, "act", Act(self.act))
        _check_common(self.op, self.kernel, self.out, self.stride)
        _check_ints(self.op, exp=self.exp, se=self.se)
        if not isinstance(self.skip, bool):
            raise MnasError(f"ir: skip must be true or false, got {self.skip!r}")
        if self.kernel == 1:
            raise MnasError("ir: kernel 1 is not allowed for a depthwise convolution (choose 3, 5 or 7)")
        if self.exp < 1:
            raise MnasError(f"ir: expanded channels must be positive, got {self.exp}")
        if self.se < 0:
            raise MnasError(f"ir: squeeze-excite width must be >= 0, got {self.se}")
        if self.se > self.exp:  # SE squeezes the expanded channels: a wider hidden layer is a typo (se999)
            raise MnasError(f"ir: squeeze-excite width {self.se} exceeds the {self.exp} expanded channels it "
                            "squeezes (use 0 < se <= exp, e.g. exp // 4)")


Block = Union[Conv, DepthSep, Bneck]
BLOCK_TYPES: dict[str, type] = {"conv": Conv, "ds": DepthSep, "ir": Bneck}


@dataclass(frozen=True)
class Head:
    """Optional 1×1 conv before pooling, global pooling, optional hidden FC, dropout, classifier."""

    conv: int = 0
    conv_act: Act = Act.HSWISH
    hidden: int = 0
    hidden_act: Act = Act.HSWISH
    dropout: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "conv_act", Act(self.conv_act))
        object.__setattr__(self, "hidden_act", Act(self.hidden_act))
        _check_ints("head", conv=self.conv, hidden=self.hidden)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real):
            raise MnasError(f"head: dropout must be a number, got {self.dropout!r}")
        if self.conv < 0 or self.hidden < 0:
            raise MnasError("head: conv and hidden widths must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise MnasError(f"head: dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class Layer:
    """One block with the shapes :meth:`Network.layers` derived for it."""

    index: int  # -1 for the stem
    block: Block
    cin: int
    hin: int
    cout: int
    hout: int

    @property
    def residual(self) -> bool:
        b = self.block
        return isinstance(b, Bneck) and b.skip and b.stride == 1 and self.cin == b.out

    @property
    def has_expand(self) -> bool:
        return isinstance(self.block, Bneck) and self.block.exp != self.cin


def out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded convolution (padding k//2)."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class Network:
    """A whole network: resolution, stem, blocks, head."""

    stem: Conv
    blocks: tuple[Block, ...]
    head: Head = field(default_factory=Head)
    resolution: int = 224
    in_channels: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(self.blocks))
        if not isinstance(self.stem, Conv):
            raise MnasError("stem must be a regular convolution (stem_k3_c16_s2_hs)")
        _check_ints("network", resolution=self.resolution, in_channels=self.in_channels)
        if self.in_channels < 1:
            raise MnasError(f"network: in_channels must be positive, got {self.in_channels}")
        if self.resolution < 8:
            raise MnasError(f"resolution {self.resolution} is too small (use >= 8)")
        for b in self.blocks:
            if not isinstance(b, (Conv, DepthSep, Bneck)):
                raise MnasError(f"block {b!r} is not a conv, ds or ir block")

    def layers(self) -> Iterator[Layer]:
        """The stem, then every block, with input/output channels and sizes."""
        c, h = self.in_channels, self.resolution
        ho = out_size(h, self.stem.stride)
        yield Layer(-1, self.stem, c, h, self.stem.out, ho)
        c, h = self.stem.out, ho
        for i, b in enumerate(self.blocks):
            ho = out_size(h, b.stride)
            yield Layer(i, b, c, h, b.out, ho)
            c, h = b.out, ho

    @property
    def final_channels(self) -> int:
        return self.blocks[-1].out if self.blocks else self.stem.out

    @property
    def final_size(self) -> int:
        *_, last = self.layers()
        return last.hout

    @property
    def feature_channels(self) -> int:
        """Channels entering the classifier (after the head's conv and hidden layer)."""
        if self.head.hidden:
            return self.head.hidden
        return self.head.conv or self.final_channels

    def replace(self, **changes) -> "Network":
        return dataclasses.replace(self, **changes)

    def with_resolution(self, resolution: int) -> "Network":
        return dataclasses.replace(self, resolution=resolution)

    def __str__(self) -> str:
        return format_network(self)


# --------------------------------------------------------------------------- text form

_FIELD_RE = re.compile(r"^(k|e|c|se|s|f|d)(\d+(?:\.\d+)?)$")
_ACTS = {a.value: a for a in Act}


def format_block(block: Block, prefix: str | None = None) -> str:
    p = prefix or block.op
    if isinstance(block, Bneck):
        parts = [p, f"k{block.kernel}", f"e{block.exp}", f"c{block.out}"]
        if block.se:
            parts.append(f"se{block.se}")
        parts += [block.act.value, f"s{block.stride}"]
        if not block.skip:
            parts.append("nr")
        return "_".join(parts)
    return "_".join([p, f"k{block.kernel}", f"c{block.out}", f"s{block.stride}", block.act.value])


def _fmt_float(x: float) -> str:
    return repr(float(x)).rstrip("0").rstrip(".") if x else "0"


def format_head(head: Head) -> str:
    parts = ["head"]
    if head.conv:
        parts += [f"c{head.conv}", head.conv_act.value]
    if head.hidden:
        parts += [f"f{head.hidden}", head.hidden_act.value]
    parts.append(f"d{_fmt_float(head.dropout)}")
    return "_".join(parts)


def format_network(net: Network) -> str:
    """The one-line text form; :func:`parse_network` reads it back exactly."""
    tokens = [f"r{net.resolution}"]
    if net.in_channels != 3:
        tokens.append(f"i{net.in_channels}")
    tokens.append(format_block(net.stem, "stem"))
    tokens += [format_block(b) for b in net.blocks]
    tokens.append(format_head(net.head))
    return " ".join(tokens)


def _parse_fields(token: str, parts: list[str], allowed: set[str]) -> tuple[dict, list[Act], bool]:
    fields: dict[str, str] = {}
    acts: list[Act] = []
    nr = False
    for part in parts:
        if part in _ACTS:
            acts.append(_ACTS[part])
            continue
        if part == "nr" and "nr" in allowed:
            if nr:
                raise MnasError(f"token {token!r}: 'nr' given twice")
            nr = True
            continue
        m = _FIELD_RE.match(part)
        if not m or m.group(1) not in allowed:
            raise MnasError(
                f"token {token!r}: unknown field {part!r} (allowed: {', '.join(sorted(allowed))}, "
                f"activations {', '.join(_ACTS)})"
            )
        if m.group(1) in fields:
            raise MnasError(f"token {token!r}: field {m.group(1)!r} given twice")
        fields[m.group(1)] = m.group(2)
    return fields, acts, nr


def _int(token: str, fields: dict, key: str, default: int | None = None) -> int:
    if key not in fields:
        if default is None:
            raise MnasError(f"token {token!r}: missing field '{key}'")
        return default
    v = fields[key]
    if not v.isdigit():
        raise MnasError(f"token {token!r}: field '{key}' must be an integer, got {v!r}")
    return int(v)


def parse_block(token: str) -> Block:
    """Parse one ``conv_…``, ``ds_…``, ``ir_…`` (or ``stem_…``) token."""
    parts = token.split("_")
    kind = parts[0]
    where = f"token {token!r}"
    try:
        if kind in ("conv", "ds", "stem"):
            f, acts, _ = _parse_fields(token, parts[1:], {"k", "c", "s"})
            if len(acts) > 1:
                raise MnasError(f"{where}: more than one activation")
            cls = DepthSep if kind == "ds" else Conv
            return cls(
                out=_int(token, f, "c"),
                kernel=_int(token, f, "k", 3),
                stride=_int(token, f, "s", 1),
                act=acts[0] if acts else Act.RELU,
            )
        if kind == "ir":
            f, acts, nr = _parse_fields(token, parts[1:], {"k", "e", "c", "s", "se", "nr"})
            if len(acts) > 1:
                raise MnasError(f"{where}: more than one activation")
            return Bneck(
                out=_int(token, f, "c"),
                exp=_int(token, f, "e"),
                kernel=_int(token, f, "k", 3),
                stride=_int(token, f, "s", 1),
                se=_int(token, f, "se", 0),
                act=acts[0] if acts else Act.RELU,
                skip=not nr,
            )
    except MnasError as e:
        msg = str(e)
        raise MnasError(msg if msg.startswith("token") else f"{where}: {msg}") from None
    raise MnasError(f"{where}: unknown block type {kind!r} (use stem, conv, ds or ir)")


def parse_head(token: str) -> Head:
    parts = token.split("_")[1:]
    conv = hidden = 0
    conv_act = hidden_act = Act.HSWISH
    dropout = 0.0
    i = 0
    seen: set[str] = set()
    while i < len(parts):
        part = parts[i]
        m = _FIELD_RE.match(part)
        if not m or m.group(1) not in ("c", "f", "d"):
            raise MnasError(f"token {token!r}: unknown field {part!r} (head takes c<N>_<act>, f<N>_<act>, d<p>)")
        key, val = m.group(1), m.group(2)
        if key in seen:
            raise MnasError(f"token {token!r}: field {key!r} given twice")
        seen.add(key)
        if key == "d":
            dropout = float(val)
            i += 1
            continue
        if not val.isdigit():
            raise MnasError(f"token {token!r}: field {key!r} must be an integer")
        act = Act.HSWISH
        if i + 1 < len(parts) and parts[i + 1] in _ACTS:
            act = _ACTS[parts[i + 1]]
            i += 1
        if key == "c":
            conv, conv_act = int(val), act
        else:
            hidden, hidden_act = int(val), act
        i += 1
    try:
        return Head(conv=conv, conv_act=conv_act, hidden=hidden, hidden_act=hidden_act, dropout=dropout)
    except MnasError as e:
        raise MnasError(f"token {token!r}: {e}") from None


def parse_network(text: str) -> Network:
    """Parse the one-line text form written by :func:`format_network`."""
    tokens = text.split()
    if not tokens:
        raise MnasError("empty architecture string")
    resolution, in_channels = 224, 3
    stem: Conv | None = None
    head = Head(dropout=0.0)
    blocks: list[Block] = []
    have_head = False
    for pos, tok in enumerate(tokens):
        if have_head:
            raise MnasError(f"token {tok!r}: nothing may follow the head token")
        if re.fullmatch(r"r\d+", tok):
            if pos != 0:
                raise MnasError(f"token {tok!r}: the resolution must be the first token")
            resolution = int(tok[1:])
        elif re.fullmatch(r"i\d+", tok):
            in_channels = int(tok[1:])
        elif tok.startswith("stem_") or tok == "stem":
            if stem is not None or blocks:
                raise MnasError(f"token {tok!r}: the stem must come once, before the blocks")
            stem = parse_block(tok)  # type: ignore[assignment]
        elif tok.startswith("head_") or tok == "head":
            head = parse_head(tok)
            have_head = True
        else:
            if stem is None:
                raise MnasError(f"token {tok!r}: expected a stem token (stem_k3_c16_s2_hs) before the blocks")
            blocks.append(parse_block(tok))
    if stem is None:
        raise MnasError("architecture has no stem token (e.g. stem_k3_c16_s2_hs)")
    return Network(stem=stem, blocks=tuple(blocks), head=head, resolution=resolution, in_channels=in_channels)


# --------------------------------------------------------------------------- dict / YAML / JSON

_BLOCK_FIELDS = {
    "conv": ("out", "kernel", "stride", "act"),
    "ds": ("out", "kernel", "stride", "act"),
    "ir": ("out", "exp", "kernel", "stride", "se", "act", "skip"),
}
_REQUIRED = {"conv": ("out",), "ds": ("out",), "ir": ("out", "exp")}
_HEAD_FIELDS = ("conv", "conv_act", "hidden", "hidden_act", "dropout")
_NET_FIELDS = ("resolution", "in_channels", "stem", "blocks", "head")


def block_to_dict(block: Block) -> dict:
    d: dict = {"op": block.op}
    for name in _BLOCK_FIELDS[block.op]:
        v = getattr(block, name)
        d[name] = v.value if isinstance(v, Act) else v
    return d


def network_to_dict(net: Network) -> dict:
    stem = block_to_dict(net.stem)
    stem.pop("op")
    head = {k: (v.value if isinstance(v, Act) else v) for k, v in dataclasses.asdict(net.head).items()}
    return {
        "resolution": net.resolution,
        "in_channels": net.in_channels,
        "stem": stem,
        "blocks": [block_to_dict(b) for b in net.blocks],
        "head": head,
    }


def _block_from_dict(d: dict, where: str, default_op: str | None = None) -> Block:
    if not isinstance(d, dict):
        raise MnasError(f"{where}: expected a mapping, got {type(d).__name__}")
    d = dict(d)
    op = d.pop("op", default_op)
    if not isinstance(op, str) or op not in _BLOCK_FIELDS:
        raise MnasError(f"{where}: unknown op {op!r} (use conv, ds or ir)")
    unknown = set(d) - set(_BLOCK_FIELDS[op])
    if unknown:
        raise MnasError(f"{where}: unknown field(s) {sorted(unknown)} for op {op!r} (allowed: {list(_BLOCK_FIELDS[op])})")
    missing = [k for k in _REQUIRED[op] if k not in d]
    if missing:
        raise MnasError(f"{where}: missing field(s) {missing}")
    if "act" in d and (not isinstance(d["act"], str) or d["act"] not in _ACTS):  # a list or mapping: named, not a crash
        raise MnasError(f"{where}: unknown activation {d['act']!r} (use {', '.join(_ACTS)})")
    try:
        return BLOCK_TYPES[op](**d)
    except MnasError as e:
        raise MnasError(f"{where}: {e}") from None
    except TypeError as e:
        raise MnasError(f"{where}: {e}") from None


def network_from_dict(d: dict, where: str = "architecture") -> Network:
    if not isinstance(d, dict):
        raise MnasError(f"{where}: expected a mapping with fields {list(_NET_FIELDS)}")
    unknown = set(d) - set(_NET_FIELDS)
    if unknown:
        raise MnasError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: {list(_NET_FIELDS)})")
    for k in ("stem", "blocks"):
        if k not in d:
            raise MnasError(f"{where}: missing field {k!r}")
    stem = _block_from_dict(d["stem"], f"{where}: stem", "conv")
    if not isinstance(d["blocks"], list):
        raise MnasError(f"{where}: 'blocks' must be a list")
    blocks = tuple(_block_from_dict(b, f"{where}: blocks[{i}]") for i, b in enumerate(d["blocks"]))
    hd = d.get("head", {}) or {}
    if not isinstance(hd, dict):
        raise MnasError(f"{where}: 'head' must be a mapping")
    unknown = set(hd) - set(_HEAD_FIELDS)
    if unknown:
        raise MnasError(f"{where}: head: unknown field(s) {sorted(unknown)} (allowed: {list(_HEAD_FIELDS)})")
    try:
        head = Head(**hd)
        return Network(
            stem=stem,  # type: ignore[arg-type]
            blocks=blocks,
            head=head,
            resolution=d.get("resolution", 224),
            in_channels=d.get("in_channels", 3),
        )
    except (MnasError, ValueError) as e:
        raise MnasError(f"{where}: {e}") from None


def save_network(net: Network, path: str | Path) -> Path:
    """Write YAML (``.yaml``/``.yml``), JSON (``.json``) or the text form (anything else)."""
    import yaml

    path = Path(path)
    d = network_to_dict(net)
    if path.suffix in (".yaml", ".yml"):
        text = f"# {format_network(net)}\n" + yaml.safe_dump(d, sort_keys=False)
    elif path.suffix == ".json":
        text = json.dumps(d, indent=2) + "\n"
    else:
        text = format_network(net) + "\n"
    from mnas.io import atomic_write_text

    atomic_write_text(path, text)  # a kill leaves the old file or the new one
    return path


def load_network(path: str | Path) -> Network:
    """Read a network saved by :func:`save_network`; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        from mnas.io import not_a_file

        raise not_a_file(path, "an architecture file")
    from mnas.io import read_text_file

    text = read_text_file(path, "architecture (YAML, JSON or text form)")
    try:
        if path.suffix in (".yaml", ".yml", ".json"):
            try:
                from mnas.io import safe_yaml

                data = safe_yaml(text, "")  # the caller names the file
            except yaml.YAMLError as e:
                raise MnasError(f"not valid YAML/JSON ({str(e).splitlines()[0]})") from None
            if isinstance(data, str):
                return parse_network(data)
            return network_from_dict(data, where="architecture")
        return parse_network(" ".join(line.split("#")[0] for line in text.splitlines()))
    except MnasError as e:
        raise MnasError(f"{path}: {e}") from None


# ---------------------------------------------------------------------------------------------- small inputs
def adapt_small_input(net: Network, remove: int | str = "auto", min_final: int = 4) -> Network:
    """Set the stride of the first ``remove`` stride-2 layers (stem included) to 1.

    ``remove="auto"`` removes as few as needed for the last feature map to be at
    least ``min_final``×``min_final`` (0 for a network already made for its resolution).
    """
    strided = [i for i, layer in enumerate(net.layers()) if layer.block.stride == 2]  # 0 = stem
    if remove == "auto":
        remove = 0
        while remove < len(strided) and _final_size(net, strided[:remove]) < min_final:
            remove += 1
    if not isinstance(remove, int) or remove < 0:
        raise MnasError(f"small_input must be 'auto' or a count >= 0, got {remove!r}")
    if remove == 0:
        return net
    if remove > len(strided):
        raise MnasError(f"small_input={remove}: the network has only {len(strided)} stride-2 layers")
    return _unstride(net, strided[:remove])


def _unstride(net: Network, positions: list[int]) -> Network:
    stem = dataclasses.replace(net.stem, stride=1) if 0 in positions else net.stem
    blocks = tuple(dataclasses.replace(b, stride=1) if i + 1 in positions else b for i, b in enumerate(net.blocks))
    return net.replace(stem=stem, blocks=blocks)


def _final_size(net: Network, positions: list[int]) -> int:
    return _unstride(net, positions).final_size
