"""Readable op keys: the ONE place a latency-table key is derived from a layer or a head.

A network's latency is looked up as a sum over its ops, one op per block plus
the head's pieces. Keys spell out everything that changes the op's cost::

    conv-in:224x224x3-out:112x112x16-k3-s2-hs           stem / regular conv (+BN+act)
    ds-in:112x112x32-out:112x112x64-k3-s1-r6            depthwise-separable block
    ir-in:56x56x24-out:28x28x40-exp:72-k5-s2-se24-re-res0   inverted residual:
        expanded channels, kernel, stride, squeeze width (se0 = none),
        activation (re, r6, hs, sw = swish, lin), residual (res1) or not (res0);
        the activation also names the squeeze-excite's form (sw: swish + sigmoid,
        else ReLU + hard-sigmoid), so a swish op never shares a key with a ReLU one
    conv-in:7x7x160-out:7x7x960-k1-s1-hs                head 1×1 conv (same key as a conv block)
    pool-in:7x7x960                                     global average pooling
    fc-in:960-out:1280-hs                               hidden fully-connected layer + act
    fc-in:1280-out:1000-lin                             classifier

Dropout is the identity at inference and has no key. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnas.arch import Act, Bneck, Conv, DepthSep, Head, Layer, Network

NUM_CLASSES = 1000


def _shape(h: int, c: int) -> str:
    return f"{h}x{h}x{c}"


def layer_key(layer: Layer) -> str:
    """The key of one block (or the stem) with the input shape :meth:`Network.layers` derived."""
    b = layer.block
    io = f"in:{_shape(layer.hin, layer.cin)}-out:{_shape(layer.hout, layer.cout)}"
    if isinstance(b, Bneck):
        return f"ir-{io}-exp:{b.exp}-k{b.kernel}-s{b.stride}-se{b.se}-{b.act.value}-res{int(layer.residual)}"
    if isinstance(b, (Conv, DepthSep)):
        return f"{b.op}-{io}-k{b.kernel}-s{b.stride}-{b.act.value}"
    raise TypeError(f"unknown block {b!r}")


@dataclass(frozen=True)
class HeadOp:
    """One piece of the head: ``kind`` is conv, pool, hidden or fc."""

    kind: str
    key: str
    size: int  # spatial input size (1 for the FC layers)
    cin: int
    cout: int
    act: Act


def head_ops(net: Network, num_classes: int = NUM_CLASSES) -> list[HeadOp]:
    """The head's ops in order: optional 1×1 conv, pooling, optional hidden FC, classifier."""
    return head_ops_at(net.final_size, net.final_channels, net.head, num_classes)


def head_ops_at(h: int, c: int, head: Head, num_classes: int = NUM_CLASSES) -> list[HeadOp]:
    """:func:`head_ops` for a ``head`` fed an h×h×c feature map."""
    ops = []
    if head.conv:
        key = f"conv-in:{_shape(h, c)}-out:{_shape(h, head.conv)}-k1-s1-{head.conv_act.value}"
        ops.append(HeadOp("conv", key, h, c, head.conv, head.conv_act))
        c = head.conv
    ops.append(HeadOp("pool", f"pool-in:{_shape(h, c)}", h, c, c, Act.NONE))
    if head.hidden:
        ops.append(HeadOp("hidden", f"fc-in:{c}-out:{head.hidden}-{head.hidden_act.value}", 1, c, head.hidden,
                          head.hidden_act))
        c = head.hidden
    ops.append(HeadOp("fc", f"fc-in:{c}-out:{num_classes}-lin", 1, c, num_classes, Act.NONE))
    return ops


def head_keys(net: Network, num_classes: int = NUM_CLASSES) -> list[str]:
    return [op.key for op in head_ops(net, num_classes)]


def network_keys(net: Network, num_classes: int = NUM_CLASSES) -> list[str]:
    """Every op key of ``net`` in execution order (stem, blocks, head); repeats are kept."""
    return [layer_key(layer) for layer in net.layers()] + head_keys(net, num_classes)
