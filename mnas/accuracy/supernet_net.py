"""A weight-sharing supernet over a whole search space, with no hidden state.

One :class:`Supernet` holds, per layer position of a search space (``s2.l1``
…), the widest weights any architecture of the space needs there:

* kernel choices share the largest kernel's depthwise weights: a k×k kernel
  is the centre k×k crop of the largest one (Once-for-All);
* expansion and width choices slice the first channels of the widest
  expand / depthwise / project weights and of their batch norms;
* squeeze-excite on/off and its width slice SE weights sized for the widest;
* ReLU / h-swish is a choice of function, not of weights;
* depth: a position the architecture does not use is skipped; a position that
  becomes a different block type (NAS-Bench-Macro's 1×1 stride-2 conv that
  replaces an identity in a stage's first layer) has its own weights.

The architecture is an argument, never state: ``supernet(x, sample)`` (a
space sample) or ``supernet.run(x, arch)`` (a :class:`SubnetArch`).

Batch norm: each position keeps only the widest BN's affine weights. Training
normalises with batch statistics; evaluation normalises with statistics
recalibrated for one sub-network (:func:`calibrate`) and passed explicitly as
a :class:`BNStats`. :func:`extract` copies one sub-network's weights (and
statistics) into a standalone :func:`mnas.model.build` module.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mnas.arch import Act, Bneck, Head, Layer, Network
from mnas.errors import MnasError

if TYPE_CHECKING:  # annotations only
    from mnas.space import SearchSpace

BN_EPS = 1e-5


# --------------------------------------------------------------------------- architecture view


@dataclass(frozen=True)
class SubnetArch:
    """One sub-network as the supernet sees it: the stem, (position, layer) pairs, the head."""

    stem: Layer
    layers: tuple[tuple[str, Layer], ...]
    head: Head
    final_channels: int

    @property
    def key(self) -> tuple:
        return (self.stem, self.layers, self.head)


_POS_RE = re.compile(r"^(.*)\.l(\d+)$")


def subnet_arch(space: SearchSpace, sample: dict) -> SubnetArch:
    """The :class:`SubnetArch` of ``sample`` in ``space`` (positions from ``space.decode_layers``).

    Within a stage, the layers present are renumbered ``l1, l2, ...`` in order:
    a skipped (identity) layer frees its position for the next one, as in
    Once-for-All's elastic depth and as NAS-Bench-Macro moves identities to
    the end of a stage; so one network always gets one set of weights.
    """
    net = space.decode(sample)
    stem = next(iter(net.layers()))
    pairs, seen = [], {}
    for k, lay in space.decode_layers(sample):
        if lay.index < 0:
            continue
        m = _POS_RE.match(k)
        if m:
            seen[m.group(1)] = seen.get(m.group(1), 0) + 1
            k = f"{m.group(1)}.l{seen[m.group(1)]}"
        pairs.append((k, lay))
    return SubnetArch(stem, tuple(pairs), net.head, net.final_channels)


def network_arch(space: SearchSpace, net: Network, supernet: "Supernet | None" = None) -> SubnetArch:
    """The :class:`SubnetArch` of a plain ``net`` built on ``space``'s template, found from its blocks alone.

    For networks no sample names: NetAdapt's shrunk networks (fewer expansion or
    stage channels than any option), a replayed network, any network of a space too
    big to search. The blocks are cut into the space's stages in order: a stage
    holds 0..``max_depth`` consecutive blocks, its first one with the stage's stride
    and the rest with stride 1, all with one output width; with ``supernet``, each
    block's op must exist at its position. Positions are numbered as
    :func:`subnet_arch` numbers them, so a network a sample decodes to gets that
    sample's arch. The widths themselves are checked when the supernet runs (a
    block wider than the supernet's weights there: a clear error).
    """
    layers = list(net.layers())
    stem, blocks = layers[0], layers[1:]
    stages = space.stages

    def fits(si: int, lo: int, hi: int) -> bool:
        st, group = stages[si], blocks[lo:hi]
        if not group:
            return True
        if len(group) > st.max_depth or group[0].block.stride != st.stride:
            return False
        if any(lay.block.stride != 1 or lay.block.out != group[0].block.out for lay in group[1:]):
            return False
        if supernet is not None:
            return all(_mkey(f"{st.name}.l{j + 1}", lay.block.op) in supernet.blocks for j, lay in enumerate(group))
        return True

    cut: list[int] = []  # cut[si] = index of the first block after stage si

    def place(si: int, lo: int) -> bool:
        if si == len(stages):
            return lo == len(blocks)
        for n in range(min(stages[si].max_depth, len(blocks) - lo), -1, -1):  # longest first
            if fits(si, lo, lo + n):
                cut.append(lo + n)
                if place(si + 1, lo + n):
                    return True
                cut.pop()
        return False

    if not place(0, 0):
        raise MnasError(f"the network's {len(blocks)} blocks do not fit the stages of space {space.name} "
                        f"(strides, widths or depths differ): score it with a supernet of its own space")
    pairs, lo = [], 0
    for st, hi in zip(stages, cut):
        pairs.extend((f"{st.name}.l{j + 1}", lay) for j, lay in enumerate(blocks[lo:hi]))
        lo = hi
    return SubnetArch(stem, tuple(pairs), net.head, net.final_channels)


def arch_network(arch: SubnetArch, resolution: int, in_channels: int) -> Network:
    """The plain :class:`Network` a :class:`SubnetArch` stands for."""
    return Network(arch.stem.block, tuple(lay.block for _, lay in arch.layers), arch.head, resolution, in_channels)


def space_archs(space: SearchSpace, limit: int = 3000, seed: int = 0) -> Iterable[dict]:
    """Every sample of ``space`` when it has at most ``limit`` members, else ``limit`` random ones.

    Random samples are topped up with, per choice, each option combined with the
    largest option of every other numeric choice, so the widest shapes are seen.
    """
    choices = space.choices()
    size = 1
    for c in choices:
        size *= len(c.options)
    if size <= limit:
        for combo in itertools.product(*(c.options for c in choices)):
            yield {c.name: o for c, o in zip(choices, combo)}
        return

    def biggest(opts):
        try:
            return max(opts)
        except TypeError:
            return opts[-1]

    top = {c.name: biggest(c.options) for c in choices}
    yield dict(top)
    for c in choices:
        for o in c.options:
            yield {**top, c.name: o}
    rng = random.Random(seed)
    for _ in range(limit):
        yield space.sample(rng)


# --------------------------------------------------------------------------- batch norm


class BNStats:
    """Batch-norm statistics for one sub-network, passed explicitly to the forward pass.

    ``BNStats()`` starts *collecting*: each batch norm normalises with its batch
    statistics and accumulates them; :meth:`freeze` averages them (the
    statistics Once-for-All's recalibration computes). A frozen ``BNStats``
    normalises with those averages. ``bn=None`` in a forward pass normalises
    with batch statistics and records nothing (training).
    """

    def __init__(self) -> None:
        self._sum: dict[str, list] = {}
        self.stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.frozen = False

    def freeze(self) -> "BNStats":
        for name, (m, v, n) in self._sum.items():
            self.stats[name] = (m / n, v / n)
        self._sum.clear()
        self.frozen = True
        return self

    def merge(self, other: "BNStats") -> None:
        """Add ``other``'s frozen statistics (used when calibrating layer by layer)."""
        self.stats.update(other.stats)
        self.frozen = True

    def normalize(self, name: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            if name not in self.stats:
                raise MnasError(f"batch norm {name} has no calibrated statistics (calibrate this sub-network first)")
            mean, var = self.stats[name]
            return F.batch_norm(x, mean, var, weight, bias, False, 0.0, BN_EPS)
        with torch.no_grad():
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dims)
            var = x.var(dims, unbiased=False)
            s = self._sum.get(name)
            if s is None:
                self._sum[name] = [mean.clone(), var.clone(), 1]
            else:
                s[0] += mean
                s[1] += var
                s[2] += 1
        return F.batch_norm(x, None, None, weight, bias, True, 0.0, BN_EPS)


def _bn(name: str, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, bn: BNStats | None) -> torch.Tensor:
    c = x.shape[1]
    w, b = weight[:c], bias[:c]
    if bn is None:
        return F.batch_norm(x, None, None, w, b, True, 0.0, BN_EPS)
    return bn.normalize(name, x, w, b)


def _act(x: torch.Tensor, act: Act) -> torch.Tensor:
    if act is Act.RELU:
        return F.relu(x)
    if act is Act.RELU6:
        return F.relu6(x)
    if act is Act.HSWISH:
        return F.hardswish(x)
    if act is Act.SWISH:
        return F.silu(x)
    return x


def _crop(w: torch.Tensor, k: int) -> torch.Tensor:
    """Centre k×k crop of a square kernel tensor (Once-for-All's kernel sharing)."""
    full = w.shape[-1]
    if k == full:
        return w
    lo = (full - k) // 2
    return w[..., lo : lo + k, lo : lo + k]


def _conv_weight(cout: int, cin: int, k: int) -> nn.Parameter:
    w = torch.empty(cout, cin, k, k)
    nn.init.kaiming_normal_(w, mode="fan_out")
    return nn.Parameter(w)


def _bn_params(c: int) -> tuple[nn.Parameter, nn.Parameter]:
    return nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c))


# --------------------------------------------------------------------------- elastic blocks


def _too_big(name: str, what: str, need: int, have: int) -> MnasError:
    return MnasError(
        f"supernet position {name}: the architecture needs {what} {need} but the supernet holds {have} "
        f"(rebuild the supernet from the space that produced this architecture)"
    )


class ElasticConv(nn.Module):
    """Regular conv + BN + act with the widest channels and largest kernel (stems, 1×1 shortcuts)."""

    def __init__(self, name: str, cin: int, cout: int, kernel: int):
        super().__init__()
        self.name = name
        self.weight = _conv_weight(cout, cin, kernel)
        self.bn_weight, self.bn_bias = _bn_params(cout)

    def forward(self, x: torch.Tensor, layer: Layer, bn: BNStats | None) -> torch.Tensor:
        b = layer.block
        co, ci, kmax = self.weight.shape[0], self.weight.shape[1], self.weight.shape[-1]
        if b.out > co or layer.cin > ci or b.kernel > kmax:
            raise _too_big(self.name, "conv (out, in, kernel)", (b.out, layer.cin, b.kernel), (co, ci, kmax))
        w = _crop(self.weight[: b.out, : layer.cin], b.kernel)
        y = F.conv2d(x, w, None, b.stride, b.kernel // 2)
        return _act(_bn(self.name, y, self.bn_weight, self.bn_bias, bn), b.act)

    def copy_to(self, module: nn.Sequential, layer: Layer, bn: BNStats | None) -> None:
        b = layer.block
        module[0].weight.data.copy_(_crop(self.weight[: b.out, : layer.cin], b.kernel))
        _copy_bn(module[1], self.bn_weight, self.bn_bias, bn, self.name)


class ElasticDepthSep(nn.Module):
    """MobileNetV1 block: elastic depthwise (largest kernel) + elastic pointwise."""

    def __init__(self, name: str, cin: int, cout: int, kernel: int):
        super().__init__()
        self.name = name
        self.dw = _conv_weight(cin, 1, kernel)
        self.dw_bn_weight, self.dw_bn_bias = _bn_params(cin)
        self.pw = _conv_weight(cout, cin, 1)
        self.pw_bn_weight, self.pw_bn_bias = _bn_params(cout)

    def forward(self, x: torch.Tensor, layer: Layer, bn: BNStats | None) -> torch.Tensor:
        b, ci = layer.block, layer.cin
        if ci > self.dw.shape[0] or b.out > self.pw.shape[0] or b.kernel > self.dw.shape[-1]:
            raise _too_big(self.name, "ds (in, out, kernel)", (ci, b.out, b.kernel), tuple(self.pw.shape[:2]))
        y = F.conv2d(x, _crop(self.dw[:ci], b.kernel), None, b.stride, b.kernel // 2, groups=ci)
        y = _act(_bn(self.name + ".dw", y, self.dw_bn_weight, self.dw_bn_bias, bn), b.act)
        y = F.conv2d(y, self.pw[: b.out, :ci])
        return _act(_bn(self.name + ".pw", y, self.pw_bn_weight, self.pw_bn_bias, bn), b.act)

    def copy_to(self, module: nn.Sequential, layer: Layer, bn: BNStats | None) -> None:
        b, ci = layer.block, layer.cin
        module[0][0].weight.data.copy_(_crop(self.dw[:ci], b.kernel))
        _copy_bn(module[0][1], self.dw_bn_weight, self.dw_bn_bias, bn, self.name + ".dw")
        module[1][0].weight.data.copy_(self.pw[: b.out, :ci])
        _copy_bn(module[1][1], self.pw_bn_weight, self.pw_bn_bias, bn, self.name + ".pw")


class ElasticBneck(nn.Module):
    """Inverted residual with the widest expand/depthwise/SE/project weights of its position.

    ``cin``: widest input; ``exp``: widest expansion; ``out``: widest output;
    ``kernel``: largest depthwise kernel; ``se``: widest squeeze (0: never on).
    """

    def __init__(self, name: str, cin: int, exp: int, out: int, kernel: int, se: int, expand: bool):
        super().__init__()
        self.name = name
        self.expand = _conv_weight(exp, cin, 1) if expand else None
        if expand:
            self.expand_bn_weight, self.expand_bn_bias = _bn_params(exp)
        self.dw = _conv_weight(exp, 1, kernel)
        self.dw_bn_weight, self.dw_bn_bias = _bn_params(exp)
        if se:
            self.se_fc1 = nn.Parameter(torch.empty(se, exp, 1, 1))
            self.se_b1 = nn.Parameter(torch.zeros(se))
            self.se_fc2 = nn.Parameter(torch.empty(exp, se, 1, 1))
            self.se_b2 = nn.Parameter(torch.zeros(exp))
            nn.init.kaiming_normal_(self.se_fc1, mode="fan_out")
            nn.init.kaiming_normal_(self.se_fc2, mode="fan_out")
        self.max_se = se
        self.project = _conv_weight(out, exp, 1)
        self.project_bn_weight, self.project_bn_bias = _bn_params(out)

    def forward(self, x: torch.Tensor, layer: Layer, bn: BNStats | None) -> torch.Tensor:
        b, ci = layer.block, layer.cin
        if b.exp > self.dw.shape[0] or b.out > self.project.shape[0] or b.kernel > self.dw.shape[-1] or b.se > self.max_se:
            raise _too_big(self.name, "ir (exp, out, kernel, se)", (b.exp, b.out, b.kernel, b.se),
                           (self.dw.shape[0], self.project.shape[0], self.dw.shape[-1], self.max_se))
        y = x
        if layer.has_expand:
            if self.expand is None or ci > self.expand.shape[1]:
                raise _too_big(self.name, "expand input", ci, 0 if self.expand is None else self.expand.shape[1])
            y = F.conv2d(y, self.expand[: b.exp, :ci])
            y = _act(_bn(self.name + ".expand", y, self.expand_bn_weight, self.expand_bn_bias, bn), b.act)
        y = F.conv2d(y, _crop(self.dw[: b.exp], b.kernel), None, b.stride, b.kernel // 2, groups=b.exp)
        y = _act(_bn(self.name + ".dw", y, self.dw_bn_weight, self.dw_bn_bias, bn), b.act)
        if b.se:
            s = y.mean((2, 3), keepdim=True)
            swish = b.act is Act.SWISH  # EfficientNet's SE (swish, sigmoid), else MobileNetV3's (as mnas.model)
            s = (F.silu if swish else F.relu)(F.conv2d(s, self.se_fc1[: b.se, : b.exp], self.se_b1[: b.se]))
            gate = torch.sigmoid if swish else F.hardsigmoid
            y = y * gate(F.conv2d(s, self.se_fc2[: b.exp, : b.se], self.se_b2[: b.exp]))
        y = F.conv2d(y, self.project[: b.out, : b.exp])
        y = _bn(self.name + ".project", y, self.project_bn_weight, self.project_bn_bias, bn)
        return x + y if layer.residual else y

    def copy_to(self, module: nn.Module, layer: Layer, bn: BNStats | None) -> None:
        b, ci = layer.block, layer.cin
        if layer.has_expand:
            module.expand[0].weight.data.copy_(self.expand[: b.exp, :ci])
            _copy_bn(module.expand[1], self.expand_bn_weight, self.expand_bn_bias, bn, self.name + ".expand")
        module.depthwise[0].weight.data.copy_(_crop(self.dw[: b.exp], b.kernel))
        _copy_bn(module.depthwise[1], self.dw_bn_weight, self.dw_bn_bias, bn, self.name + ".dw")
        if b.se:
            module.se.fc1.weight.data.copy_(self.se_fc1[: b.se, : b.exp])
            module.se.fc1.bias.data.copy_(self.se_b1[: b.se])
            module.se.fc2.weight.data.copy_(self.se_fc2[: b.exp, : b.se])
            module.se.fc2.bias.data.copy_(self.se_b2[: b.exp])
        module.project[0].weight.data.copy_(self.project[: b.out, : b.exp])
        _copy_bn(module.project[1], self.project_bn_weight, self.project_bn_bias, bn, self.name + ".project")


class ElasticHead(nn.Module):
    """Head: optional 1×1 conv + BN + act, pooling, optional hidden FC + act, classifier."""

    def __init__(self, cin: int, conv: int, hidden: int, num_classes: int):
        super().__init__()
        self.name = "head"
        feat = cin
        if conv:
            self.conv = _conv_weight(conv, cin, 1)
            self.bn_weight, self.bn_bias = _bn_params(conv)
            feat = conv
        if hidden:
            self.hidden = nn.Linear(feat, hidden)
            nn.init.normal_(self.hidden.weight, 0, 0.01)
            nn.init.zeros_(self.hidden.bias)
            feat = hidden
        self.fc = nn.Linear(max(feat, cin, conv), num_classes)
        nn.init.normal_(self.fc.weight, 0, 0.01)
        nn.init.zeros_(self.fc.bias)
        self.max_conv, self.max_hidden = conv, hidden

    def forward(self, x: torch.Tensor, head: Head, bn: BNStats | None) -> torch.Tensor:
        if head.conv > self.max_conv or head.hidden > self.max_hidden:
            raise _too_big("head", "(conv, hidden)", (head.conv, head.hidden), (self.max_conv, self.max_hidden))
        if head.conv:
            x = F.conv2d(x, self.conv[: head.conv, : x.shape[1]])
            x = _act(_bn("head", x, self.bn_weight, self.bn_bias, bn), head.conv_act)
        x = x.mean((2, 3))
        if head.hidden:
            x = _act(F.linear(x, self.hidden.weight[: head.hidden, : x.shape[1]], self.hidden.bias[: head.hidden]),
                     head.hidden_act)
        # dropout is a training regulariser of stand-alone nets; the supernet trains without it
        return F.linear(x, self.fc.weight[:, : x.shape[1]], self.fc.bias)

    def copy_to(self, module: nn.Module, head: Head, bn: BNStats | None, cin: int) -> None:
        c = cin
        if head.conv:
            module.conv[0].weight.data.copy_(self.conv[: head.conv, :cin])
            _copy_bn(module.conv[1], self.bn_weight, self.bn_bias, bn, "head")
            c = head.conv
        if head.hidden:
            module.hidden[0].weight.data.copy_(self.hidden.weight[: head.hidden, :c])
            module.hidden[0].bias.data.copy_(self.hidden.bias[: head.hidden])
            c = head.hidden
        module.fc.weight.data.copy_(self.fc.weight[:, :c])
        module.fc.bias.data.copy_(self.fc.bias)


def _copy_bn(bnm: nn.BatchNorm2d, weight, bias, bn: BNStats | None, name: str) -> None:
    c = bnm.num_features
    bnm.weight.data.copy_(weight[:c])
    bnm.bias.data.copy_(bias[:c])
    bnm.eps = BN_EPS
    if bn is not None and bn.frozen:
        mean, var = bn.stats[name]
        bnm.running_mean.copy_(mean)
        bnm.running_var.copy_(var)


# --------------------------------------------------------------------------- the supernet


def _mkey(position: str, op: str) -> str:
    return f"{position}:{op}".replace(".", "_")


@dataclass
class _Widest:
    cin: int = 0
    exp: int = 0
    out: int = 0
    kernel: int = 0
    se: int = 0
    expand: bool = False


class Supernet(nn.Module):
    """The weight-sharing network of ``archs`` (:class:`SubnetArch` values, e.g. a whole space).

    Build it with :meth:`from_space`. ``supernet(x, sample)`` runs the
    sub-network a space sample names; ``supernet.run(x, arch)`` one given as a
    :class:`SubnetArch`. ``bn``: ``None`` (batch statistics, training) or a
    :class:`BNStats` (collecting, or frozen after :func:`calibrate`).
    """

    def __init__(self, archs: Iterable[SubnetArch], num_classes: int, space: SearchSpace | None = None):
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        widest: dict[tuple[str, str], _Widest] = {}
        order: list[str] = []
        head_cin = head_conv = head_hidden = 0
        stem = _Widest()
        n = 0
        for arch in archs:
            n += 1
            s = arch.stem
            stem.cin, stem.out = max(stem.cin, s.cin), max(stem.out, s.cout)
            stem.kernel = max(stem.kernel, s.block.kernel)
            for pos, lay in arch.layers:
                b = lay.block
                if pos not in order:
                    order.append(pos)
                w = widest.setdefault((pos, b.op), _Widest())
                w.cin, w.out, w.kernel = max(w.cin, lay.cin), max(w.out, b.out), max(w.kernel, b.kernel)
                if isinstance(b, Bneck):
                    w.exp, w.se = max(w.exp, b.exp), max(w.se, b.se)
                    w.expand = w.expand or lay.has_expand
            head_cin = max(head_cin, arch.final_channels)
            head_conv, head_hidden = max(head_conv, arch.head.conv), max(head_hidden, arch.head.hidden)
        if n == 0:
            raise MnasError("a supernet needs at least one architecture")
        self.positions = tuple(order)
        self.stem = ElasticConv("stem", stem.cin, stem.out, stem.kernel)
        blocks: dict[str, nn.Module] = {}
        for (pos, op), w in widest.items():
            name = f"{pos}:{op}"
            if op == "ir":
                blocks[_mkey(pos, op)] = ElasticBneck(name, w.cin, max(w.exp, w.cin), w.out, w.kernel, w.se, w.expand)
            elif op == "ds":
                blocks[_mkey(pos, op)] = ElasticDepthSep(name, w.cin, w.out, w.kernel)
            else:
                blocks[_mkey(pos, op)] = ElasticConv(name, w.cin, w.out, w.kernel)
        self.blocks = nn.ModuleDict(blocks)
        self.head = ElasticHead(head_cin, head_conv, head_hidden, num_classes)

    @classmethod
    def from_space(cls, space: SearchSpace, num_classes: int = 10, limit: int = 3000) -> "Supernet":
        """Scan ``space`` (all of it when small, else a large sample) for the widest shape per position."""
        return cls((subnet_arch(space, s) for s in space_archs(space, limit)), num_classes, space)

    # ---- forward, one piece at a time (the batched evaluator walks the same pieces)

    def block(self, position: str, layer: Layer) -> nn.Module:
        k = _mkey(position, layer.block.op)
        if k not in self.blocks:
            raise MnasError(f"the supernet has no {layer.block.op} block at position {position} "
                            f"(rebuild it from the space that produced this architecture)")
        return self.blocks[k]

    def run_stem(self, x: torch.Tensor, arch: SubnetArch, bn: BNStats | None = None) -> torch.Tensor:
        return self.stem(x, arch.stem, bn)

    def run_layer(self, x: torch.Tensor, position: str, layer: Layer, bn: BNStats | None = None) -> torch.Tensor:
        return self.block(position, layer)(x, layer, bn)

    def run_head(self, x: torch.Tensor, arch: SubnetArch, bn: BNStats | None = None) -> torch.Tensor:
        return self.head(x, arch.head, bn)

    def run(self, x: torch.Tensor, arch: SubnetArch, bn: BNStats | None = None) -> torch.Tensor:
        x = self.run_stem(x, arch, bn)
        for pos, lay in arch.layers:
            x = self.run_layer(x, pos, lay, bn)
        return self.run_head(x, arch, bn)

    def arch(self, sample: dict) -> SubnetArch:
        if self.space is None:
            raise MnasError("this supernet was built without a space: pass a SubnetArch to supernet.run(x, arch)")
        return subnet_arch(self.space, sample)

    def forward(self, x: torch.Tensor, sample: dict, bn: BNStats | None = None) -> torch.Tensor:
        return self.run(x, self.arch(sample), bn)


@torch.no_grad()
def calibrate(supernet: Supernet, arch: SubnetArch, batches: Sequence[torch.Tensor]) -> BNStats:
    """Recalibrated batch-norm statistics of ``arch`` on ``batches`` (each normalised with its own stats)."""
    bn = BNStats()
    for xb in batches:
        supernet.run(xb, arch, bn)
    return bn.freeze()


def extract(supernet: Supernet, arch: SubnetArch, bn: BNStats | None = None, resolution: int = 32):
    """A standalone :func:`mnas.model.build` module of ``arch`` with the supernet's weights copied in.

    With frozen ``bn`` statistics the module (in eval mode) computes what
    ``supernet.run(x, arch, bn)`` computes.
    """
    from mnas.model import build

    net = arch_network(arch, resolution, arch.stem.cin)
    model = build(net, supernet.num_classes)
    supernet.stem.copy_to(model.stem, arch.stem, bn)
    for module, (pos, lay) in zip(model.blocks, arch.layers):
        supernet.block(pos, lay).copy_to(module, lay, bn)
    supernet.head.copy_to(model.head, arch.head, bn, arch.final_channels)
    return model
