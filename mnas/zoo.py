"""Reference networks as registered data.

Each entry is a function of no arguments returning a :class:`~mnas.arch.Network`
at 224×224. The tables below mirror the papers' tables row for row; widths are
scaled with :func:`~mnas.arch.make_divisible` exactly as the reference code does.

Sources: MobileNetV1 (Howard et al. 2017, Table 1), MobileNetV2 (Sandler et al.
2018, Table 2), MnasNet-A1 (Tan et al. 2019, Fig. 7; tensorflow/tpu
``mnasnet_models.py``), MnasNet-B1 (torchvision ``mnasnet.py``), MobileNetV3
(Howard et al. 2019, Tables 1–2; torchvision ``mobilenetv3.py``; slim
``mobilenet_v3.py`` for the minimalistic variants).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from mnas.arch import Act, Bneck, Conv, DepthSep, Head, Network, make_divisible, se_channels
from mnas.errors import MnasError

RE, R6, HS = Act.RELU, Act.RELU6, Act.HSWISH

_REGISTRY: dict[str, Callable[[], Network]] = {}
_DOCS: dict[str, str] = {}


def register(name: str, factory: Callable[[], Network], doc: str = "") -> None:
    """Add a reference network; a name already taken is refused."""
    if name in _REGISTRY:
        raise MnasError(f"reference network {name!r} is already registered")
    _REGISTRY[name] = factory
    _DOCS[name] = doc


def names() -> list[str]:
    return list(_REGISTRY)


def describe(name: str) -> str:
    return _DOCS.get(name, "")


def get(name: str) -> Network:
    try:
        return _REGISTRY[name]()
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see `mnas arch list`)"
        raise MnasError(f"unknown reference network {name!r}{hint}") from None


# --------------------------------------------------------------------------- MobileNetV3

# (kernel, expanded, out, SE, activation, stride) — the paper's Table 1 and Table 2.
V3_LARGE = [
    (3, 16, 16, False, RE, 1),
    (3, 64, 24, False, RE, 2),
    (3, 72, 24, False, RE, 1),
    (5, 72, 40, True, RE, 2),
    (5, 120, 40, True, RE, 1),
    (5, 120, 40, True, RE, 1),
    (3, 240, 80, False, HS, 2),
    (3, 200, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 184, 80, False, HS, 1),
    (3, 480, 112, True, HS, 1),
    (3, 672, 112, True, HS, 1),
    (5, 672, 160, True, HS, 2),
    (5, 960, 160, True, HS, 1),
    (5, 960, 160, True, HS, 1),
]
V3_SMALL = [
    (3, 16, 16, True, RE, 2),
    (3, 72, 24, False, RE, 2),
    (3, 88, 24, False, RE, 1),
    (5, 96, 40, True, HS, 2),
    (5, 240, 40, True, HS, 1),
    (5, 240, 40, True, HS, 1),
    (5, 120, 48, True, HS, 1),
    (5, 144, 48, True, HS, 1),
    (5, 288, 96, True, HS, 2),
    (5, 576, 96, True, HS, 1),
    (5, 576, 96, True, HS, 1),
]


def mobilenet_v3(rows, last_conv: int, hidden: int, width: float = 1.0, minimal: bool = False) -> Network:
    """MobileNetV3 from its table; ``minimal``: no SE, ReLU everywhere, 3×3 kernels only.

    Width variants follow the paper's own code (TF slim ``mobilenet_v3.py``): every
    output width is ``make_divisible(c * width, 8)`` and each expansion keeps the
    table's *ratio* to the block's actual (rounded) input, ``make_divisible(cin * e / c_in, 8)``.
    This reproduces the paper's Table 9 multiply-adds (torchvision instead scales the
    expansion width directly and differs from the paper for width != 1). The hidden
    layer after pooling is only scaled up (slim's ``finegrain_classification_mode``).
    """

    def ch(c: float) -> int:
        return make_divisible(c * width, 8)

    act = (lambda a: RE) if minimal else (lambda a: a)
    blocks = []
    base_in, cin = 16, ch(16)
    for k, e, c, se, a, s in rows:
        exp = cin if e == base_in else make_divisible(cin * e / base_in, 8)
        blocks.append(
            Bneck(
                out=ch(c),
                exp=exp,
                kernel=3 if minimal else k,
                stride=s,
                se=se_channels(exp) if (se and not minimal) else 0,
                act=act(a),
            )
        )
        base_in, cin = c, ch(c)
    return Network(
        stem=Conv(out=ch(16), kernel=3, stride=2, act=act(HS)),
        blocks=tuple(blocks),
        head=Head(conv=ch(last_conv), conv_act=act(HS), hidden=make_divisible(hidden * max(1.0, width), 8),
                  hidden_act=act(HS), dropout=0.2),
    )


# --------------------------------------------------------------------------- MobileNetV2

# (expansion t, out c, repeats n, first stride s) — the paper's Table 2.
V2_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


def mobilenet_v2(width: float = 1.0) -> Network:
    cin = make_divisible(32 * width, 8)
    stem = Conv(out=cin, kernel=3, stride=2, act=R6)
    blocks = []
    for t, c, n, s in V2_SETTINGS:
        out = make_divisible(c * width, 8)
        for i in range(n):
            blocks.append(Bneck(out=out, exp=int(round(cin * t)), kernel=3, stride=s if i == 0 else 1, act=R6))
            cin = out
    last = make_divisible(1280 * max(1.0, width), 8)
    return Network(stem=stem, blocks=tuple(blocks), head=Head(conv=last, conv_act=R6, dropout=0.2))


# --------------------------------------------------------------------------- MobileNetV1

V1_SETTINGS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def mobilenet_v1(width: float = 1.0) -> Network:
    stem = Conv(out=make_divisible(32 * width, 8), kernel=3, stride=2, act=R6)
    blocks = tuple(DepthSep(out=make_divisible(c * width, 8), kernel=3, stride=s, act=R6) for c, s in V1_SETTINGS)
    return Network(stem=stem, blocks=blocks, head=Head(dropout=0.001))


# --------------------------------------------------------------------------- MnasNet

# (repeats, kernel, stride, expansion, out, se ratio of the block's input) — tensorflow/tpu mnasnet_a1.
MNASNET_A1 = [
    (2, 3, 2, 6, 24, 0.0),
    (3, 5, 2, 3, 40, 0.25),
    (4, 3, 2, 6, 80, 0.0),
    (2, 3, 1, 6, 112, 0.25),
    (3, 5, 2, 6, 160, 0.25),
    (1, 3, 1, 6, 320, 0.0),
]
# (repeats, kernel, stride, expansion, out) — torchvision mnasnet1_0 (MnasNet-B1: no SE).
MNASNET_B1 = [(3, 3, 2, 3, 24), (3, 5, 2, 3, 40), (3, 5, 2, 6, 80), (2, 3, 1, 6, 96), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


def _mnas_depth(c: int, width: float) -> int:
    # torchvision's _round_to_multiple_of(val * alpha, 8, round_up_bias=0.9) == make_divisible
    return make_divisible(c * width, 8)


def mnasnet_a1(width: float = 1.0) -> Network:
    d = lambda c: _mnas_depth(c, width)  # noqa: E731
    stem = Conv(out=d(32), kernel=3, stride=2, act=RE)
    # SepConv: depthwise 3x3 on 32 channels, linear projection to 16, no skip.
    blocks = [Bneck(out=d(16), exp=d(32), kernel=3, stride=1, act=RE, skip=False)]
    cin = d(16)
    for n, k, s, t, c, se in MNASNET_A1:
        for i in range(n):
            # TF MnasNet: squeeze width = max(1, int(input_filters * se_ratio)).
            blocks.append(Bneck(out=d(c), exp=cin * t, kernel=k, stride=s if i == 0 else 1,
                                se=max(1, int(cin * se)) if se else 0, act=RE))
            cin = d(c)
    return Network(stem=stem, blocks=tuple(blocks), head=Head(conv=1280, conv_act=RE, dropout=0.2))


def mnasnet_b1(width: float = 1.0) -> Network:
    d = lambda c: _mnas_depth(c, width)  # noqa: E731
    stem = Conv(out=d(32), kernel=3, stride=2, act=RE)
    blocks = [Bneck(out=d(16), exp=d(32), kernel=3, stride=1, act=RE, skip=False)]
    cin = d(16)
    for n, k, s, t, c in MNASNET_B1:
        for i in range(n):
            blocks.append(Bneck(out=d(c), exp=cin * t, kernel=k, stride=s if i == 0 else 1, act=RE))
            cin = d(c)
    return Network(stem=stem, blocks=tuple(blocks), head=Head(conv=1280, conv_act=RE, dropout=0.2))


# --------------------------------------------------------------------------- registration

def _width_name(base: str, w: float) -> str:
    return base if w == 1.0 else f"{base}_{w:g}"


register("mobilenet_v1", mobilenet_v1, "MobileNetV1 1.0 (Howard et al. 2017)")
for _w in (0.35, 0.5, 0.75, 1.0, 1.3, 1.4):
    register(_width_name("mobilenet_v2", _w), partial(mobilenet_v2, _w), f"MobileNetV2 width {_w:g}")
for _w in (0.5, 0.75, 1.0, 1.3):
    register(_width_name("mnasnet_b1", _w), partial(mnasnet_b1, _w), f"MnasNet-B1 width {_w:g} (no SE; torchvision mnasnet)")
register("mnasnet_a1", mnasnet_a1, "MnasNet-A1 (Tan et al. 2019, with SE)")
for _w in (0.35, 0.5, 0.75, 1.0, 1.25):
    register(_width_name("mobilenet_v3_large", _w), partial(mobilenet_v3, V3_LARGE, 960, 1280, _w),
             f"MobileNetV3-Large width {_w:g}")
    register(_width_name("mobilenet_v3_small", _w), partial(mobilenet_v3, V3_SMALL, 576, 1024, _w),
             f"MobileNetV3-Small width {_w:g}")
register("mobilenet_v3_large_minimalistic", lambda: mobilenet_v3(V3_LARGE, 960, 1280, minimal=True),
         "MobileNetV3-Large minimalistic (no SE, no h-swish, no 5x5)")
register("mobilenet_v3_small_minimalistic", lambda: mobilenet_v3(V3_SMALL, 576, 1024, minimal=True),
         "MobileNetV3-Small minimalistic (no SE, no h-swish, no 5x5)")
