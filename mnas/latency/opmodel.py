"""The transparent per-op cost model behind modelled tables such as ``pixel1``.

An op's cost is a non-negative combination of features of the op (see
``experiments/fit_pixel1.py`` for the fit):

==============  ==================================================================
feature         what (per op; summed over a network's ops)
==============  ==================================================================
pw_madds        multiply-adds of 1×1 convolutions, in millions
dw_madds        multiply-adds of depthwise convolutions (millions)
conv_madds      multiply-adds of full k×k convolutions (the stem), millions
fc_params       weights of fully-connected layers and SE's two 1×1 convs, millions
traffic         activation elements read + written by every conv / FC (millions)
hswish          elements passed through h-swish (millions)
se              number of squeeze-excite modules
layers          number of conv / FC layers (fixed per-layer cost)
==============  ==================================================================

A modelled table stores the fitted weights in its header (``feature_weights_ms``);
the predictor prices an op the table does not list with the same weights, so a
NetAdapt-shrunk width or a user's own space is covered exactly as the listed ops are.
"""

from __future__ import annotations

import numpy as np

from mnas.arch import Act, Bneck, Conv, DepthSep, Layer
from mnas.latency.keys import HeadOp

FEATURES = ("pw_madds", "dw_madds", "conv_madds", "fc_params", "traffic", "hswish", "se", "layers")


def _conv(cin, cout, k, hin, hout, groups=1):
    """(madds, traffic) of one convolution."""
    madds = k * k * (cin // groups) * cout * hout * hout
    return madds, cin * hin * hin + cout * hout * hout


def layer_features(layer: Layer) -> np.ndarray:
    f = dict.fromkeys(FEATURES, 0.0)
    b, cin, hin, hout = layer.block, layer.cin, layer.hin, layer.hout

    if isinstance(b, Conv):
        m, t = _conv(cin, b.out, b.kernel, hin, hout)
        f["pw_madds" if b.kernel == 1 else "conv_madds"] += m
        f["traffic"] += t
        f["layers"] += 1
        f["hswish"] += b.out * hout * hout if b.act is Act.HSWISH else 0
    elif isinstance(b, DepthSep):
        m, t = _conv(cin, cin, b.kernel, hin, hout, groups=cin)
        f["dw_madds"] += m
        f["traffic"] += t
        m, t = _conv(cin, b.out, 1, hout, hout)
        f["pw_madds"] += m
        f["traffic"] += t
        f["layers"] += 2
        f["hswish"] += (cin + b.out) * hout * hout if b.act is Act.HSWISH else 0
    elif isinstance(b, Bneck):
        hs = b.act is Act.HSWISH
        if layer.has_expand:
            m, t = _conv(cin, b.exp, 1, hin, hin)
            f["pw_madds"] += m
            f["traffic"] += t
            f["layers"] += 1
            f["hswish"] += b.exp * hin * hin if hs else 0
        m, t = _conv(b.exp, b.exp, b.kernel, hin, hout, groups=b.exp)
        f["dw_madds"] += m
        f["traffic"] += t
        f["layers"] += 1
        f["hswish"] += b.exp * hout * hout if hs else 0
        if b.se:
            f["se"] += 1
            f["fc_params"] += 2 * b.exp * b.se
            f["traffic"] += 2 * b.exp * hout * hout  # pool reads, scale reads and writes the map
        m, t = _conv(b.exp, b.out, 1, hout, hout)
        f["pw_madds"] += m
        f["traffic"] += t + (b.out * hout * hout if layer.residual else 0)
        f["layers"] += 1
    return _vector(f)


def head_features(hop: HeadOp) -> np.ndarray:
    f = dict.fromkeys(FEATURES, 0.0)
    if hop.kind == "conv":
        m, t = _conv(hop.cin, hop.cout, 1, hop.size, hop.size)
        f["pw_madds"], f["traffic"], f["layers"] = m, t, 1
        f["hswish"] = hop.cout * hop.size * hop.size if hop.act is Act.HSWISH else 0
    elif hop.kind == "pool":
        f["traffic"] = hop.cin * hop.size * hop.size
    else:  # hidden FC or classifier
        f["fc_params"], f["traffic"], f["layers"] = hop.cin * hop.cout, hop.cin + hop.cout, 1
        f["hswish"] = hop.cout if hop.act is Act.HSWISH else 0
    return _vector(f)


def _vector(f: dict) -> np.ndarray:
    scale = {"se": 1.0, "layers": 1.0}
    return np.array([f[k] / scale.get(k, 1e6) for k in FEATURES], dtype=np.float64)




def op_cost_ms(features: np.ndarray, weights: dict) -> float:
    """Cost of one op under the weights a modelled table's header stores."""
    return float(features @ np.array([weights[k] for k in FEATURES], dtype=np.float64))
