"""Parameters, multiply-adds and activation memory from the architecture data alone.

No module is built and no forward pass runs. Conventions follow the papers:
multiply-adds count convolutions and fully-connected layers (squeeze-excite's two
1×1 convolutions on the pooled vector included); batch norm, activations,
pooling and residual additions are not counted. Parameters count every learned
tensor (batch-norm scale and shift included, running statistics excluded).
Tests cross-check every figure against forward hooks on the built module.

:func:`count_thop` is the other convention in use, thop's (batch norm and pooling
counted as well): Accel-NASBench's ``macs_m`` is that figure.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnas.arch import Bneck, Conv, DepthSep, Layer, Network


@dataclass(frozen=True)
class Counts:
    params: int
    madds: int
    activations: int  # elements written by every conv/linear layer, summed (one image)
    peak_activations: int  # the largest input+output of any one layer (elements)

    def as_dict(self) -> dict:
        return {
            "params": self.params,
            "madds": self.madds,
            "activations": self.activations,
            "peak_activations": self.peak_activations,
        }


def _conv(cin: int, cout: int, k: int, hout: int, groups: int = 1, bn: bool = True, bias: bool = False):
    params = k * k * (cin // groups) * cout + (2 * cout if bn else 0) + (cout if bias else 0)
    madds = k * k * (cin // groups) * cout * hout * hout
    return params, madds, cout * hout * hout


def layer_counts(layer: Layer) -> tuple[int, int, int, int]:
    """(params, madds, activation elements, peak elements) of one block."""
    b, cin, hin, hout = layer.block, layer.cin, layer.hin, layer.hout
    parts = []
    if isinstance(b, Conv):
        parts.append(_conv(cin, b.out, b.kernel, hout))
    elif isinstance(b, DepthSep):
        parts.append(_conv(cin, cin, b.kernel, hout, groups=cin))
        parts.append(_conv(cin, b.out, 1, hout))
    elif isinstance(b, Bneck):
        if layer.has_expand:
            parts.append(_conv(cin, b.exp, 1, hin))
        parts.append(_conv(b.exp, b.exp, b.kernel, hout, groups=b.exp))
        if b.se:
            p1 = b.exp * b.se + b.se
            p2 = b.se * b.exp + b.exp
            parts.append((p1 + p2, 2 * b.exp * b.se, b.se + b.exp))
        parts.append(_conv(b.exp, b.out, 1, hout))
    else:  # pragma: no cover - Network validates block types
        raise TypeError(b)
    params = sum(p[0] for p in parts)
    madds = sum(p[1] for p in parts)
    acts = sum(p[2] for p in parts)
    # Largest live tensor pair: the block input with the widest intermediate.
    widest = max(p[2] for p in parts)
    peak = cin * hin * hin + widest
    return params, madds, acts, peak


def count(net: Network, num_classes: int = 1000) -> Counts:
    """Analytic counts for ``net`` with a ``num_classes``-way classifier."""
    params = madds = acts = peak = 0
    for layer in net.layers():
        p, m, a, pk = layer_counts(layer)
        params, madds, acts, peak = params + p, madds + m, acts + a, max(peak, pk)
    h = net.final_size
    c = net.final_channels
    head = net.head
    if head.conv:
        p, m, a = _conv(c, head.conv, 1, h)
        params, madds, acts = params + p, madds + m, acts + a
        peak = max(peak, c * h * h + a)
        c = head.conv
    if head.hidden:
        params += c * head.hidden + head.hidden
        madds += c * head.hidden
        acts += head.hidden
        c = head.hidden
    params += c * num_classes + num_classes
    madds += c * num_classes
    acts += num_classes
    return Counts(params=params, madds=madds, activations=acts, peak_activations=peak)


# --------------------------------------------------------------------------- thop's convention

def count_thop(net: Network, num_classes: int = 1000) -> int:
    """Operations of ``net`` as thop (pytorch-OpCounter >= 0.1) counts them for one image.

    This is the convention of Accel-NASBench's ``macs_m`` (the benchmark ran
    ``thop.profile`` on each network at 1×3×224×224, ``train_nmodels_proxified.py``
    in afzalxo/ANB-DatasetCollection); ``count_thop(net) / 1e6`` equals the CSV's
    ``macs_m`` for all of its 4,626 rows (tested). Per module:

    - convolution: output elements × (input channels / groups) × k² (bias not counted),
      squeeze-excite's two 1×1 convolutions on the pooled vector included;
    - batch norm (affine): 4 × elements (normalise 2, scale and shift 2);
    - adaptive average pooling: (H·W + 1) × channels (the SE's pooling and the head's);
    - fully-connected: inputs × outputs (bias not counted);
    - activations (ReLU, h-swish, swish, the gates), residual additions, dropout: 0.

    So it is :func:`count`'s multiply-adds plus 4 per batch-normalised element plus
    the pooling; parameters are the same in both conventions (``count(net).params``).
    """
    ops = 0

    def conv_bn(cin: int, cout: int, k: int, hout: int, groups: int = 1) -> int:
        el = cout * hout * hout
        return el * (cin // groups) * k * k + 4 * el

    for layer in net.layers():
        b, cin, hin, hout = layer.block, layer.cin, layer.hin, layer.hout
        if isinstance(b, Conv):
            ops += conv_bn(cin, b.out, b.kernel, hout)
        elif isinstance(b, DepthSep):
            ops += conv_bn(cin, cin, b.kernel, hout, groups=cin) + conv_bn(cin, b.out, 1, hout)
        elif isinstance(b, Bneck):
            if layer.has_expand:
                ops += conv_bn(cin, b.exp, 1, hin)
            ops += conv_bn(b.exp, b.exp, b.kernel, hout, groups=b.exp)
            if b.se:
                ops += (hout * hout + 1) * b.exp + 2 * b.exp * b.se
            ops += conv_bn(b.exp, b.out, 1, hout)
        else:  # pragma: no cover - Network validates block types
            raise TypeError(b)
    h, c, head = net.final_size, net.final_channels, net.head
    if head.conv:
        ops += conv_bn(c, head.conv, 1, h)
        c = head.conv
    ops += (h * h + 1) * c
    if head.hidden:
        ops += c * head.hidden
        c = head.hidden
    return ops + c * num_classes
