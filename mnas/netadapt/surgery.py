"""Weight inheritance: keep the largest-L2-norm filters of every shrunk width, slice everything else to match.

For a network ``old`` (with a trained model) and a narrower ``new`` of the same
topology (a :mod:`~mnas.netadapt.proposals` proposal), :func:`kept_channels`
picks, for every width that shrank, the channels to keep:

- an expansion layer: the filters of its 1×1 expansion conv with the largest L2
  norm (the head's 1×1 conv likewise);
- a residual group: the channels whose filters, summed over every layer that
  writes the group's tensor (the producer and each residual block's projection;
  a norm per layer, then summed), are largest: all members keep the same
  channels, so the residual additions stay aligned;
- a squeeze-excite width: the hidden units whose ``fc1`` rows (over the kept
  expanded channels) have the largest norm.

Kept channels stay in their original order. :func:`inherit` then copies the
kept slices of every tensor into a freshly built ``new`` model: convolution
filters *and* the consumers' input channels, batch-norm scale/shift and
running statistics, squeeze-excite weights and biases, depthwise filters, the
head's conv/hidden/classifier inputs.
"""

from __future__ import annotations

import torch
from torch import nn

from mnas.arch import Bneck, Conv, DepthSep, Network
from mnas.model import MnasModel, build
from mnas.netadapt.proposals import STEM, residual_groups, topology

Index = torch.Tensor | None  # None = keep every channel


def _row_norms(w: torch.Tensor) -> torch.Tensor:
    return w.detach().flatten(1).norm(dim=1)


def top_channels(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest scores, in ascending (original) order."""
    return torch.topk(scores, k, sorted=False).indices.sort().values


def _producer_weight(model: MnasModel, net: Network, index: int) -> torch.Tensor:
    """The conv weight whose output channels are layer ``index``'s output."""
    if index == STEM:
        return model.stem[0].weight
    b, mod = net.blocks[index], model.blocks[index]
    if isinstance(b, Conv):
        return mod[0].weight
    if isinstance(b, DepthSep):
        return mod[1][0].weight
    return mod.project[0].weight


def kept_channels(model: MnasModel, old: Network, new: Network) -> dict:
    """Channels kept per width: ``("t", producer)`` group tensors, ``("e", i)`` expansions,
    ``("se", i)`` squeeze widths, ``("h",)`` head conv; absent = unchanged."""
    if topology(old) != topology(new) or len(old.blocks) != len(new.blocks):
        raise ValueError("weights can only be inherited between networks of the same topology")
    keep: dict = {}
    new_groups = {g.producer: g for g in residual_groups(new)}
    for g in residual_groups(old):
        w_new = new_groups[g.producer].width
        if w_new != g.width:
            scores = sum(_row_norms(_producer_weight(model, old, m)) for m in g.members)
            keep[("t", g.producer)] = top_channels(scores, w_new)
    tensor_of = _tensor_index(old, keep)
    for layer in old.layers():
        i, b = layer.index, layer.block
        if not isinstance(b, Bneck):
            continue
        nb = new.blocks[i]
        if layer.has_expand:
            e_idx = None
            if nb.exp != b.exp:
                e_idx = top_channels(_row_norms(model.blocks[i].expand[0].weight), nb.exp)
        else:
            e_idx = tensor_of[i - 1]
        if e_idx is not None:
            keep[("e", i)] = e_idx
        if b.se and nb.se != b.se:
            fc1 = model.blocks[i].se.fc1.weight.detach()
            if e_idx is not None:
                fc1 = fc1[:, e_idx]
            keep[("se", i)] = top_channels(_row_norms(fc1), nb.se)
    if new.head.conv != old.head.conv:
        keep[("h",)] = top_channels(_row_norms(model.head.conv[0].weight), new.head.conv)
    return keep


def _tensor_index(net: Network, keep: dict) -> dict[int, Index]:
    """Layer index -> kept channels of its output tensor (None = all)."""
    out: dict[int, Index] = {}
    for g in residual_groups(net):
        for m in g.members:
            out[m] = keep.get(("t", g.producer))
    return out


def _take(t: torch.Tensor, dim: int, idx: Index) -> torch.Tensor:
    return t if idx is None else t.index_select(dim, idx)


def _conv(sd: dict, p: str, mod: nn.Conv2d, out: Index, inp: Index = None) -> None:
    sd[p + "weight"] = _take(_take(mod.weight.detach(), 0, out), 1, inp)
    if mod.bias is not None:
        sd[p + "bias"] = _take(mod.bias.detach(), 0, out)


def _bn(sd: dict, p: str, mod: nn.BatchNorm2d, idx: Index) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        sd[p + name] = _take(getattr(mod, name).detach(), 0, idx)
    sd[p + "num_batches_tracked"] = mod.num_batches_tracked.detach().clone()


def _conv_bn(sd: dict, p: str, mod: nn.Sequential, out: Index, inp: Index = None) -> None:
    _conv(sd, p + "0.", mod[0], out, inp)
    _bn(sd, p + "1.", mod[1], out)


def _linear(sd: dict, p: str, mod: nn.Linear, out: Index, inp: Index) -> None:
    sd[p + "weight"] = _take(_take(mod.weight.detach(), 0, out), 1, inp)
    sd[p + "bias"] = _take(mod.bias.detach(), 0, out)


def inherited_state(model: MnasModel, old: Network, new: Network, keep: dict | None = None) -> dict:
    """The state dict of ``new``: every tensor of ``model`` (built from ``old``) sliced to the kept channels."""
    keep = kept_channels(model, old, new) if keep is None else keep
    t_of = _tensor_index(old, keep)
    sd: dict = {}
    _conv_bn(sd, "stem.", model.stem, t_of[STEM])
    for layer in old.layers():
        i, b = layer.index, layer.block
        if i == STEM:
            continue
        mod, p = model.blocks[i], f"blocks.{i}."
        inp, out = t_of[i - 1], t_of[i]
        if isinstance(b, Conv):
            _conv_bn(sd, p, mod, out, inp)
        elif isinstance(b, DepthSep):
            _conv_bn(sd, p + "0.", mod[0], inp)  # depthwise: one filter per input channel
            _conv_bn(sd, p + "1.", mod[1], out, inp)
        else:
            e = keep.get(("e", i))
            if layer.has_expand:
                _conv_bn(sd, p + "expand.", mod.expand, e, inp)
            _conv_bn(sd, p + "depthwise.", mod.depthwise, e)
            if b.se:
                s = keep.get(("se", i))
                _conv(sd, p + "se.fc1.", mod.se.fc1, s, e)
                _conv(sd, p + "se.fc2.", mod.se.fc2, e, s)
            _conv_bn(sd, p + "project.", mod.project, out, e)
    feat = t_of[len(old.blocks) - 1] if old.blocks else t_of[STEM]
    head = model.head
    if old.head.conv:
        h = keep.get(("h",))
        _conv_bn(sd, "head.conv.", head.conv, h, feat)
        feat = h
    if old.head.hidden:
        _linear(sd, "head.hidden.0.", head.hidden[0], None, feat)
        feat = None
    _linear(sd, "head.fc.", head.fc, None, feat)
    return sd


def inherit(model: MnasModel, old: Network, new: Network, num_classes: int | None = None) -> MnasModel:
    """A model of ``new`` whose weights are ``model``'s kept filters (see the module docstring)."""
    num_classes = model.head.fc.out_features if num_classes is None else num_classes
    child = build(new, num_classes)
    child.load_state_dict(inherited_state(model, old, new), strict=True)
    return child
