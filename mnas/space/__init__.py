"""Search spaces: the architecture language with choice points.

A space file (YAML, under ``search_spaces/``) is a network template — stem,
stages, head — in which any stage field may be a list of options. Walking the
stages in order gives every choice a stable name (``s3.kernel`` block-wise,
``s3.l2.kernel`` layer-wise) used as Optuna parameter names and result columns.

Stage fields (a scalar is fixed, a list is a choice):

=========  =================================================================
``op``     ``ir`` (inverted residual), ``sep`` (depthwise-separable, linear
           projection: ``ir`` with no expansion), ``conv`` (regular conv),
           ``ds`` (MobileNetV1 block), ``skip`` (identity; a 1×1 conv + BN
           where the layer changes shape, as NAS-Bench-Macro does)
``kernel`` depthwise (or conv) kernel: 3, 5, 7
``expand`` expansion ratio of the block's input channels (1 = no expansion)
``se``     squeeze-excite on/off (width by the space's ``se_rule``)
``act``    ``re`` / ``hs`` / ``r6`` / ``sw``
``skip``   residual connection where shapes allow (true/false)
``depth``  change of the stage's number of layers (stage-level)
``layers`` absolute number of layers (stage-level; replaces ``depth``), e.g.
           Accel-NASBench's ``[1, 2, 3]``
``width``  multiplier of the stage's output channels (stage-level)
``block``  tied options: a list of mappings of the fields above, e.g.
           ``[{op: skip}, {kernel: 3, expand: 3}, {kernel: 5, expand: 6}]``
=========  =================================================================

``mode: stage`` (MnasNet's block-wise search: all layers of a stage share
choices) is the default; ``mode: layer`` gives each layer its own choices.

Space-level options:

- ``se_rule``: the squeeze width of an SE block. ``expanded_quarter`` (default,
  MobileNetV3: ``make_divisible(exp // 4, 8)``) or ``input_quarter`` (EfficientNet
  and Accel-NASBench: ``max(1, int(cin / 4))`` of the layer's input channels).
- ``encoding``: a grouped compact encoding, one group per stage with one character
  per listed field (the option's *value*; booleans as 0/1), groups joined by
  ``sep``: ``encoding: {fields: [expand, kernel, layers, se], sep: "-"}`` gives
  Accel-NASBench's ``1311-6321-6521-6331-6531-6541-6311`` (EfficientNet-B0); an optional
  ``example`` code is quoted by error messages.
  Without it ``encode_string`` writes one character per choice, the option's index
  (NAS-Bench-Macro's keys). The grouped form applies in stage mode.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from mnas.arch import (
    Act,
    Block,
    Bneck,
    Conv,
    DepthSep,
    Head,
    Layer,
    Network,
    make_divisible,
    out_size,
    se_channels,
    se_channels_input,
)
from mnas.errors import MnasError

SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
LAYER_FIELDS = ("op", "kernel", "expand", "se", "act", "skip")
STAGE_FIELDS = ("depth", "layers", "width")
OPS = ("ir", "sep", "conv", "ds", "skip")
DEFAULTS: dict[str, Any] = {"op": "ir", "kernel": 3, "expand": 6, "se": False, "act": "re", "skip": True,
                            "depth": 0, "layers": None, "width": 1.0}
SE_RULES = ("expanded_quarter", "input_quarter")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Choice:
    """One choice point: a stable name and its options, in file order."""

    name: str
    options: tuple

    def __len__(self) -> int:
        return len(self.options)


@dataclass(frozen=True)
class Stage:
    name: str
    out: int
    stride: int
    depth: int
    fields: Mapping[str, tuple]  # field -> options (length 1 = fixed)
    block: tuple[Mapping[str, Any], ...] | None  # tied options, or None

    def options(self, field: str) -> tuple:
        return self.fields.get(field, (DEFAULTS[field],))

    @property
    def max_depth(self) -> int:
        if "layers" in self.fields:
            return max(self.fields["layers"])
        return self.depth + max(self.options("depth"))


def _as_options(where: str, value: Any) -> tuple:
    opts = tuple(value) if isinstance(value, list) else (value,)
    if not opts:
        raise MnasError(f"{where}: empty list of options")
    if len(set(map(repr, opts))) != len(opts):
        raise MnasError(f"{where}: duplicate options {list(opts)}")
    return opts


def _check_layer_value(where: str, field: str, v: Any) -> None:
    ok = {
        "op": lambda x: x in OPS,
        "kernel": lambda x: x in (1, 3, 5, 7),
        "expand": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 1,
        "se": lambda x: isinstance(x, bool),
        "act": lambda x: x in {a.value for a in Act},
        "skip": lambda x: isinstance(x, bool),
        "depth": lambda x: isinstance(x, int) and not isinstance(x, bool),
        "layers": lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= 1,
        "width": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0,
    }[field]
    if not ok(v):
        hint = {"op": f"one of {list(OPS)}", "kernel": "3, 5 or 7", "expand": "a ratio >= 1", "se": "true/false",
                "act": ", ".join(a.value for a in Act if a is not Act.NONE), "skip": "true/false",
                "depth": "an integer change of depth", "layers": "a number of layers >= 1",
                "width": "a positive multiplier"}[field]
        raise MnasError(f"{where}: bad value {v!r} for {field!r} (expected {hint})")


class SearchSpace:
    """A network template with choice points, walked in a fixed order."""

    def __init__(self, name: str, stem: Conv, stages: list[Stage], head: Head, resolution: tuple[int, ...],
                 mode: str = "stage", description: str = "", source: str = "", se_rule: str = "expanded_quarter",
                 encoding: Mapping[str, Any] | None = None):
        where = source or name
        if mode not in ("stage", "layer"):
            raise MnasError(f"{where}: mode must be 'stage' or 'layer', got {mode!r}")
        if se_rule not in SE_RULES:
            raise MnasError(f"{where}: se_rule must be one of {', '.join(SE_RULES)}, got {se_rule!r}")
        self.name, self.stem, self.stages, self.head = name, stem, stages, head
        self.resolutions, self.mode, self.description, self.source = resolution, mode, description, source
        self.se_rule = se_rule
        self._choices = self._walk()
        self._by_name = {c.name: c for c in self._choices}
        self.encoding_spec = dict(encoding) if encoding else None
        # the grouped encoding applies in stage mode (layer-wise choices fall back to one index per choice)
        self.encoding = _check_encoding(where, self, self.encoding_spec) if encoding and mode == "stage" else None

    # ------------------------------------------------------------------ choices
    def _layer_fields(self, st: Stage) -> list[str]:
        return (["block"] if st.block else []) + [f for f in LAYER_FIELDS if f in st.fields]

    def _walk(self) -> list[Choice]:
        out: list[Choice] = []
        if len(self.resolutions) > 1:
            out.append(Choice("resolution", self.resolutions))
        for st in self.stages:
            for f in STAGE_FIELDS:
                if len(st.options(f)) > 1:
                    out.append(Choice(f"{st.name}.{f}", st.options(f)))
            fields = self._layer_fields(st)
            prefixes = [f"{st.name}."] if self.mode == "stage" else [f"{st.name}.l{j + 1}." for j in range(st.max_depth)]
            for pre in prefixes:
                for f in fields:
                    opts = tuple(range(len(st.block))) if f == "block" else st.options(f)
                    if len(opts) > 1:
                        out.append(Choice(pre + f, opts))
        return out

    def choices(self) -> list[Choice]:
        return list(self._choices)

    @property
    def size(self) -> int:
        """Number of choice combinations (distinct samples)."""
        return math.prod(len(c) for c in self._choices)

    @property
    def resolution(self) -> int:
        return self.resolutions[-1] if len(self.resolutions) == 1 else max(self.resolutions)

    def sample(self, rng: random.Random) -> dict:
        return {c.name: rng.choice(c.options) for c in self._choices}

    def check(self, sample: Mapping[str, Any]) -> dict:
        """Validate a sample: every choice present with one of its options, nothing else."""
        unknown = set(sample) - set(self._by_name)
        if unknown:
            raise MnasError(f"space {self.name}: unknown choice(s) {sorted(unknown)[:5]}")
        out = {}
        for c in self._choices:
            if c.name not in sample:
                raise MnasError(f"space {self.name}: missing choice {c.name!r} (options {list(c.options)})")
            v = sample[c.name]
            if v not in c.options:
                raise MnasError(f"space {self.name}: {v!r} is not an option of {c.name!r} (options {list(c.options)})")
            out[c.name] = v
        return out

    # ------------------------------------------------------------------ decoding
    def _value(self, sample: Mapping[str, Any], st: Stage, field: str, layer: int) -> Any:
        if field in STAGE_FIELDS:
            opts = st.options(field)
            return sample.get(f"{st.name}.{field}", opts[0]) if len(opts) > 1 else opts[0]
        pre = f"{st.name}." if self.mode == "stage" else f"{st.name}.l{layer + 1}."
        value = None
        if st.block:
            idx = sample.get(pre + "block", 0) if len(st.block) > 1 else 0
            value = st.block[idx].get(field)
        if value is None:
            opts = st.options(field)
            value = sample.get(pre + field, opts[0]) if len(opts) > 1 else opts[0]
        return value

    def stage_out(self, st: Stage, width: float) -> int:
        return make_divisible(st.out * width, 8)

    def stage_depth(self, sample: Mapping[str, Any], st: Stage) -> int:
        """Number of layers of stage ``st`` in ``sample``: ``layers`` if the stage has it, else depth + change."""
        if "layers" in st.fields:
            return int(self._value(sample, st, "layers", 0))
        return st.depth + self._value(sample, st, "depth", 0)

    def se_width(self, cin: int, exp: int) -> int:
        """The squeeze width of an SE block with ``cin`` inputs and ``exp`` expanded channels (``se_rule``)."""
        if self.se_rule == "input_quarter":
            return se_channels_input(cin)
        return se_channels(exp)

    def _make_block(self, op: str, cin: int, out: int, stride: int, v: Mapping[str, Any]) -> Block | None:
        act = Act(v["act"])
        k = v["kernel"]
        if op == "skip":
            if stride == 1 and cin == out:
                return None
            return Conv(out=out, kernel=1, stride=stride, act=Act.NONE)
        if op == "conv":
            return Conv(out=out, kernel=k, stride=stride, act=act)
        if op == "ds":
            return DepthSep(out=out, kernel=k, stride=stride, act=act)
        ratio = 1 if op == "sep" else v["expand"]
        exp = cin if ratio == 1 else make_divisible(cin * ratio, 8)
        return Bneck(out=out, exp=exp, kernel=k, stride=stride, se=self.se_width(cin, exp) if v["se"] else 0,
                     act=act, skip=bool(v["skip"]))

    def decode_layers(self, sample: Mapping[str, Any]) -> list[tuple[str, Layer]]:
        """(position key ``s3.l1``, Layer) for the stem (``stem``) and every present block."""
        sample = self.check(sample)
        res = sample.get("resolution", self.resolution)
        h = out_size(res, self.stem.stride)
        out: list[tuple[str, Layer]] = [("stem", Layer(-1, self.stem, 3, res, self.stem.out, h))]
        cin, i = self.stem.out, 0
        for st in self.stages:
            depth = self.stage_depth(sample, st)
            cout = self.stage_out(st, self._value(sample, st, "width", 0))
            for j in range(depth):
                stride = st.stride if j == 0 else 1
                v = {f: self._value(sample, st, f, j) for f in LAYER_FIELDS}
                block = self._make_block(v["op"], cin, cout, stride, v)
                if block is None:
                    continue
                ho = out_size(h, stride)
                out.append((f"{st.name}.l{j + 1}", Layer(i, block, cin, h, cout, ho)))
                cin, h, i = cout, ho, i + 1
        return out

    def decode(self, sample: Mapping[str, Any]) -> Network:
        layers = self.decode_layers(sample)
        res = dict(sample).get("resolution", self.resolution)
        return Network(stem=self.stem, blocks=tuple(layer.block for _, layer in layers[1:]), head=self.head,
                       resolution=res)

    # ------------------------------------------------------------------ compact encoding
    def encode_string(self, sample: Mapping[str, Any]) -> str:
        """The compact encoding of ``sample``.

        With the space's grouped ``encoding`` (Accel-NASBench): one group per stage, one
        character per field, the option's value (``1311-6321-6521-6331-6531-6541-6311``).
        Otherwise one character per choice, the index of the chosen option
        (NAS-Bench-Macro: ``22212220``).
        """
        sample = self.check(sample)
        if self.encoding is not None:
            fields, sep = self.encoding
            return sep.join("".join(_code_char(self._value(sample, st, f, 0)) for f in fields) for st in self.stages)
        return "".join(_DIGITS[c.options.index(sample[c.name])] for c in self._choices)

    def is_code(self, text: str) -> bool:
        """Whether ``text`` has the shape of this space's compact encoding (not whether it is valid)."""
        text = text.strip()
        if not text or " " in text:
            return False
        if self.encoding is not None:
            fields, sep = self.encoding
            return sep in text and all(ch.isalnum() or ch == sep for ch in text) and not text.startswith(sep)
        return len(text) == len(self._choices) and all(ch.lower() in _DIGITS for ch in text)

    def decode_string(self, code: str) -> dict:
        """The sample of a compact encoding; a malformed one is an error naming the group or character."""
        code = code.strip()
        if self.encoding is not None:
            return self._decode_groups(code)
        if len(code) != len(self._choices):
            raise MnasError(f"space {self.name}: encoding {code!r} has {len(code)} characters, "
                            f"expected {len(self._choices)} (one per choice: {', '.join(c.name for c in self._choices[:4])}, ...)")
        out = {}
        for ch, c in zip(code, self._choices):
            idx = _DIGITS.find(ch.lower())
            if not 0 <= idx < len(c):
                raise MnasError(f"space {self.name}: {ch!r} is not an option index of {c.name!r} (0..{len(c) - 1})")
            out[c.name] = c.options[idx]
        return out

    def _decode_groups(self, code: str) -> dict:
        fields, sep = self.encoding  # type: ignore[misc]
        n = len(self.stages)
        example = (self.encoding_spec or {}).get("example") or self.encode_string(self.extreme("max"))
        shape = sep.join([f"{''.join(f[0].upper() for f in fields)}"] * n)
        groups = code.split(sep)
        if len(groups) != n:
            raise MnasError(f"space {self.name}: encoding {code!r} has {len(groups)} group(s), expected {n} "
                            f"(one per block {self.stages[0].name}..{self.stages[-1].name}: {shape}, e.g. {example})")
        out: dict[str, Any] = {}
        for gi, (grp, st) in enumerate(zip(groups, self.stages)):
            where = f"space {self.name}: group {gi + 1} of {n} ({st.name}) {grp!r}"
            if len(grp) != len(fields):
                raise MnasError(f"{where} has {len(grp)} character(s), expected {len(fields)} "
                                f"({', '.join(fields)})")
            for ch, f in zip(grp, fields):
                opts = self._stage_options(st, f)
                by_char = {_code_char(o): o for o in opts}
                if ch not in by_char:
                    allowed = ", ".join(by_char)
                    others = [s.name for s in self.stages if ch in {_code_char(o) for o in self._stage_options(s, f)}]
                    hint = f"; only {', '.join(others)} allow{'s' if len(others) == 1 else ''} {ch}" if others else ""
                    raise MnasError(f"{where}: {f} {ch} is not allowed here (choose {allowed}{hint})")
                name = f"{st.name}.{f}"
                if name in self._by_name:
                    out[name] = by_char[ch]
        return self.check(out)

    def _stage_options(self, st: Stage, field: str) -> tuple:
        if field in st.fields:
            return st.fields[field]
        if field == "layers":
            return tuple(st.depth + d for d in st.options("depth"))
        return st.options(field)

    # ------------------------------------------------------------------ enumeration
    def distinct_layers(self, resolutions: Iterable[int] | None = None) -> set[Layer]:
        """Every distinct (block, input shape) any architecture of the space can contain, stem included.

        Enumerated stage by stage (input widths from the previous stage's width
        options), never by walking the whole product of choices.
        """
        layers: set[Layer] = set()
        for res in resolutions or self.resolutions:
            h = out_size(res, self.stem.stride)
            layers.add(Layer(-1, self.stem, 3, res, self.stem.out, h))
            cins = {self.stem.out}
            for st in self.stages:
                couts = {self.stage_out(st, w) for w in st.options("width")}
                combos = self._layer_combos(st)
                ho = out_size(h, st.stride)
                for cout in couts:
                    # The first layer takes any previous width and the stage's stride; later layers
                    # see cout channels at the reduced size (a skipped first layer is a 1x1 conv).
                    positions = [(cin, h, st.stride) for cin in cins]
                    if st.max_depth > 1:
                        positions.append((cout, ho, 1))
                    for cin, hin, stride in positions:
                        for v in combos:
                            b = self._make_block(v["op"], cin, cout, stride, v)
                            if b is not None:
                                layers.add(Layer(0, b, cin, hin, cout, out_size(hin, stride)))
                cins, h = couts, ho
        return layers

    def _layer_combos(self, st: Stage) -> list[dict]:
        base_fields = {f: st.options(f) for f in LAYER_FIELDS}
        variants = st.block or ({},)
        out = []
        for tied in variants:
            fields = {f: ((tied[f],) if f in tied else base_fields[f]) for f in LAYER_FIELDS}
            for combo in itertools.product(*fields.values()):
                out.append(dict(zip(fields, combo)))
        return out

    def head_inputs(self, resolutions: Iterable[int] | None = None) -> set[tuple[int, int]]:
        """(channels, spatial size) pairs that can reach the head."""
        st = self.stages[-1]
        couts = {self.stage_out(st, w) for w in st.options("width")}
        out = set()
        for res in resolutions or self.resolutions:
            h = out_size(res, self.stem.stride)
            for s in self.stages:
                h = out_size(h, s.stride)
            out |= {(c, h) for c in couts}
        return out

    def extreme(self, which: str = "min") -> dict:
        """The sample taking every choice's first (``min``) or last (``max``) option, for bounds."""
        return {c.name: (c.options[0] if which == "min" else c.options[-1]) for c in self._choices}

    def with_mode(self, mode: str) -> "SearchSpace":
        return SearchSpace(self.name, self.stem, self.stages, self.head, self.resolutions, mode, self.description,
                           self.source, self.se_rule, self.encoding_spec)

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, {len(self._choices)} choices, {self.size:.3g} combinations, mode={self.mode})"


# ---------------------------------------------------------------------- loading

_TOP = {"name", "description", "resolution", "mode", "stem", "stages", "head", "source", "se_rule", "encoding"}


def _code_char(value: Any) -> str:
    """One option's character in a grouped encoding: booleans as 0/1, numbers as written."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _check_encoding(where: str, space: "SearchSpace", spec: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """Validate a grouped ``encoding`` spec: every choice covered, one character per option."""
    if not isinstance(spec, Mapping) or set(spec) - {"fields", "sep", "example"} or "fields" not in spec:
        raise MnasError(f"{where}: encoding must be a mapping {{fields: [expand, kernel, layers, se], sep: '-', "
                        f"example: CODE}} (example optional)")
    fields = spec["fields"]
    sep = str(spec.get("sep", "-"))
    if not isinstance(fields, list) or not fields or any(f not in LAYER_FIELDS + STAGE_FIELDS for f in fields):
        raise MnasError(f"{where}: encoding.fields must list choice fields of {', '.join(LAYER_FIELDS + STAGE_FIELDS)}")
    if len(sep) != 1 or sep.isalnum():
        raise MnasError(f"{where}: encoding.sep must be one non-alphanumeric character, got {sep!r}")
    covered = {f"{st.name}.{f}" for st in space.stages for f in fields}
    missing = [c.name for c in space.choices() if c.name not in covered]
    if missing:
        raise MnasError(f"{where}: encoding.fields {fields} leave choice(s) {missing[:4]} out")
    for st in space.stages:
        for f in fields:
            chars = [_code_char(o) for o in space._stage_options(st, f)]
            if any(len(ch) != 1 or not ch.isalnum() for ch in chars) or len(set(chars)) != len(chars):
                raise MnasError(f"{where}: encoding: options {chars} of {st.name}.{f} are not distinct "
                                f"single characters")
    return tuple(fields), sep
_STAGE_KEYS = {"name", "out", "stride", "depth", "choices", "block"}


def _parse_stage(where: str, i: int, d: Any) -> Stage:
    if not isinstance(d, dict):
        raise MnasError(f"{where}: expected a mapping")
    unknown = set(d) - _STAGE_KEYS
    if unknown:
        raise MnasError(f"{where}: unknown field(s) {sorted(unknown)} (allowed: {sorted(_STAGE_KEYS)})")
    for k in ("out", "stride"):
        if k not in d:
            raise MnasError(f"{where}: missing field {k!r}")
    if isinstance(d["stride"], bool) or d["stride"] not in (1, 2):
        raise MnasError(f"{where}: stride must be 1 or 2, got {d['stride']!r}")
    if isinstance(d["out"], bool) or not isinstance(d["out"], int) or d["out"] < 1:
        raise MnasError(f"{where}: out (the stage's output channels) must be a whole number >= 1, got {d['out']!r}")
    fields: dict[str, tuple] = {}
    ch = d.get("choices", {}) or {}
    if not isinstance(ch, dict):
        raise MnasError(f"{where}: 'choices' must be a mapping of field -> option(s)")
    for f, v in ch.items():
        if f not in LAYER_FIELDS + STAGE_FIELDS:
            raise MnasError(f"{where}: unknown choice field {f!r} (allowed: {', '.join(LAYER_FIELDS + STAGE_FIELDS)})")
        opts = _as_options(f"{where}.{f}", v)
        for o in opts:
            _check_layer_value(f"{where}.{f}", f, o)
        fields[f] = opts
    block = None
    if "block" in d:
        if not isinstance(d["block"], list) or not d["block"]:
            raise MnasError(f"{where}.block: expected a non-empty list of mappings")
        block_list = []
        for j, opt in enumerate(d["block"]):
            if not isinstance(opt, dict):
                raise MnasError(f"{where}.block[{j}]: expected a mapping like {{op: ir, kernel: 3, expand: 3}}")
            for f, v in opt.items():
                if f not in LAYER_FIELDS:
                    raise MnasError(f"{where}.block[{j}]: unknown field {f!r} (allowed: {', '.join(LAYER_FIELDS)})")
                _check_layer_value(f"{where}.block[{j}]", f, v)
            block_list.append(dict(opt))
        block = tuple(block_list)
    depth = d.get("depth", 1)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise MnasError(f"{where}: depth must be a positive integer, got {depth!r}")
    stage = Stage(name=str(d.get("name", f"s{i + 1}")), out=int(d["out"]), stride=int(d["stride"]), depth=depth,
                  fields=fields, block=block)
    if "layers" in fields and "depth" in fields:
        raise MnasError(f"{where}: give either 'layers' (absolute) or 'depth' (a change), not both")
    if "layers" not in fields and stage.depth + min(stage.options("depth")) < 1:
        raise MnasError(f"{where}: depth {depth} with change {min(stage.options('depth'))} leaves no layer")
    return stage


def space_from_dict(d: Any, source: str = "space") -> SearchSpace:
    from mnas.arch import _block_from_dict  # one parser for blocks everywhere

    if not isinstance(d, dict):
        raise MnasError(f"{source}: expected a mapping with fields {sorted(_TOP)}")
    unknown = set(d) - _TOP
    if unknown:
        raise MnasError(f"{source}: unknown field(s) {sorted(unknown)} (allowed: {sorted(_TOP)})")
    for k in ("name", "stem", "stages"):
        if k not in d:
            raise MnasError(f"{source}: missing field {k!r}")
    stem = _block_from_dict(d["stem"], f"{source}: stem", "conv")
    if not isinstance(stem, Conv):
        raise MnasError(f"{source}: stem must be a regular convolution")
    if not isinstance(d["stages"], list) or not d["stages"]:
        raise MnasError(f"{source}: 'stages' must be a non-empty list")
    stages = [_parse_stage(f"{source}: stages[{i}]", i, s) for i, s in enumerate(d["stages"])]
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise MnasError(f"{source}: stage names must be unique, got {names}")
    hd = d.get("head", {}) or {}
    try:
        head = Head(**hd)
    except TypeError as e:
        raise MnasError(f"{source}: head: {e}") from None
    res = _as_options(f"{source}: resolution", d.get("resolution", 224))
    return SearchSpace(str(d["name"]), stem, stages, head, tuple(int(r) for r in res), str(d.get("mode", "stage")),
                       str(d.get("description", "")), source, str(d.get("se_rule", "expanded_quarter")),
                       d.get("encoding"))


def list_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def load_space(name_or_path: str | Path, mode: str | None = None) -> SearchSpace:
    """Load a space by name (a file in ``search_spaces/``) or by path; ``mode`` overrides stage/layer."""
    if isinstance(name_or_path, SearchSpace):
        return name_or_path.with_mode(mode) if mode else name_or_path
    import yaml

    p = Path(name_or_path)
    if not p.is_file():
        cand = SPACES_DIR / f"{name_or_path}.yaml"
        if not cand.is_file():
            raise MnasError(f"unknown search space {str(name_or_path)!r}: no such file, and not one of "
                            f"{', '.join(list_spaces())} (files in search_spaces/)")
        p = cand
    try:
        from mnas.io import read_text_file

        from mnas.io import safe_yaml

        data = safe_yaml(read_text_file(p, "search space YAML"), p)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise MnasError(f"{p}:{line} not valid YAML ({getattr(e, 'problem', e)})") from None
    space = space_from_dict(data, source=str(p))
    return space.with_mode(mode) if mode else space
