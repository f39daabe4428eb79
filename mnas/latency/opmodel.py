"""The transparent per-op cost model behind modelled tables such as ``pixel1``.

An op's cost is a non-negative combination of features of the op (see
``experiments/fit_pixel1.py`` for the fit):

==============  ==================================================================
feature         what (per op; summed over a network's ops)
==============  ==================================================================
pw_madds        multiply-adds of 1×1 convolutions, in millions
pw_params       weights of 1×1 convolutions (millions): at 7×7 a wide 1×1 conv does
                49 multiply-adds per weight it loads, so weight traffic shows
dw_madds        multiply-adds of depthwise convolutions (millions): grows with k²
dw_outputs      output elements of depthwise convolutions (millions): the part of a
                depthwise conv's cost that does not grow with its kernel (loads,
                stores, border handling), so k5/k3 and k7/k3 ratios are free to fit
dw_s2_inputs    input elements of stride-2 depthwise convolutions (millions): a
                strided depthwise conv reads its whole, 4× larger, input map
conv_madds      multiply-adds of full k×k convolutions (the stem), millions
fc_params       weights of fully-connected layers (hidden FC, classifier), millions
se_params       weights of squeeze-excite's two 1×1 convs, millions
traffic         activation elements read + written by every conv / FC (millions)
hswish          elements passed through h-swish or swish (millions; see below)
se              number of squeeze-excite modules
layers          number of conv / FC layers (fixed per-layer cost)
==============  ==================================================================

Swish (``Act.SWISH``, token ``sw``, used by the Accel-NASBench space) has no
Pixel-1 measurement: a swish element is priced like an h-swish element. TFLite
evaluates swish as x·sigmoid(x) (an exp per element) and h-swish as x·relu6(x+3)/6
(three cheap vector ops); the MobileNetV3 paper introduced h-swish because
sigmoid was slow on the phone, so this is a lower bound on swish's cost.

A modelled table stores the fitted weights in its header (``feature_weights_ms``);
the predictor prices an op the table does not list with the same weights, so a
NetAdapt-shrunk width or a user's own space is covered exactly as the listed ops
are. A weight the header lacks (a table written by an older model) counts as 0.
"""

from __future__ import annotations

import numpy as np

from mnas.arch import Bneck, Conv, DepthSep, Layer
from mnas.latency.keys import HeadOp

FEATURES = ("pw_madds", "pw_params", "dw_madds", "dw_outputs", "dw_s2_inputs", "conv_madds", "fc_params",
            "se_params", "traffic", "hswish", "se", "layers")
COUNTS = ("se", "layers")  # plain counts; every other feature is in millions
# activations priced by the ``hswish`` feature (by token, so the model does not depend on Act members existing)
NONLINEAR_ACTS = ("hs", "sw")


def _nonlinear(act) -> bool:
    return getattr(act, "value", act) in NONLINEAR_ACTS


def _conv(cin, cout, k, hin, hout, groups=1):
    """(madds, traffic) of one convolution."""
    madds = k * k * (cin // groups) * cout * hout * hout
    return madds, cin * hin * hin + cout * hout * hout


def _pointwise(f: dict, cin: int, cout: int, h: int) -> None:
    m, t = _conv(cin, cout, 1, h, h)
    f["pw_madds"] += m
    f["pw_params"] += cin * cout
    f["traffic"] += t
    f["layers"] += 1


def _depthwise(f: dict, ch: int, k: int, stride: int, hin: int, hout: int) -> None:
    m, t = _conv(ch, ch, k, hin, hout, groups=ch)
    f["dw_madds"] += m
    f["dw_outputs"] += ch * hout * hout
    f["dw_s2_inputs"] += ch * hin * hin if stride > 1 else 0
    f["traffic"] += t
    f["layers"] += 1


def layer_features(layer: Layer) -> np.ndarray:
    f = dict.fromkeys(FEATURES, 0.0)
    b, cin, hin, hout = layer.block, layer.cin, layer.hin, layer.hout

    if isinstance(b, Conv):
        m, t = _conv(cin, b.out, b.kernel, hin, hout)
        if b.kernel == 1:
            f["pw_madds"] += m
            f["pw_params"] += cin * b.out
        else:
            f["conv_madds"] += m
        f["traffic"] += t
        f["layers"] += 1
        f["hswish"] += b.out * hout * hout if _nonlinear(b.act) else 0
    elif isinstance(b, DepthSep):
        _depthwise(f, cin, b.kernel, b.stride, hin, hout)
        _pointwise(f, cin, b.out, hout)
        f["hswish"] += (cin + b.out) * hout * hout if _nonlinear(b.act) else 0
    elif isinstance(b, Bneck):
        nl = _nonlinear(b.act)
        if layer.has_expand:
            _pointwise(f, cin, b.exp, hin)
            f["hswish"] += b.exp * hin * hin if nl else 0
        _depthwise(f, b.exp, b.kernel, b.stride, hin, hout)
        f["hswish"] += b.exp * hout * hout if nl else 0
        if b.se:
            f["se"] += 1
            f["se_params"] += 2 * b.exp * b.se
            f["traffic"] += 2 * b.exp * hout * hout  # pool reads, scale reads and writes the map
        _pointwise(f, b.exp, b.out, hout)
        f["traffic"] += b.out * hout * hout if layer.residual else 0
    else:
        raise TypeError(f"the cost model has no features for block {b!r}")
    return _vector(f)


def head_features(hop: HeadOp) -> np.ndarray:
    f = dict.fromkeys(FEATURES, 0.0)
    if hop.kind == "conv":
        _pointwise(f, hop.cin, hop.cout, hop.size)
        f["hswish"] = hop.cout * hop.size * hop.size if _nonlinear(hop.act) else 0
    elif hop.kind == "pool":
        f["traffic"] = hop.cin * hop.size * hop.size
    else:  # hidden FC or classifier
        f["fc_params"], f["traffic"], f["layers"] = hop.cin * hop.cout, hop.cin + hop.cout, 1
        f["hswish"] = hop.cout if _nonlinear(hop.act) else 0
    return _vector(f)


def _vector(f: dict) -> np.ndarray:
    return np.array([f[k] if k in COUNTS else f[k] / 1e6 for k in FEATURES], dtype=np.float64)


def weight_vector(weights: dict) -> np.ndarray:
    """The header's ``feature_weights_ms`` as a vector over :data:`FEATURES` (absent weights are 0)."""
    return np.array([float(weights.get(k, 0.0)) for k in FEATURES], dtype=np.float64)


def op_cost_ms(features: np.ndarray, weights: dict) -> float:
    """Cost of one op under the weights a modelled table's header stores."""
    return float(features @ weight_vector(weights))
