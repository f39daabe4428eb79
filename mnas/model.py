"""The one builder: :class:`~mnas.arch.Network` → ``torch.nn.Module``.

Blocks take explicit integers; every channel count, stride and padding comes
from :meth:`Network.layers`, so the module and the analytic counts cannot
disagree about shapes.
"""

from __future__ import annotations

import torch
from torch import nn

from mnas.arch import Act, Bneck, Conv, DepthSep, Layer, Network


def activation(act: Act) -> nn.Module:
    if act is Act.RELU:
        return nn.ReLU(inplace=True)
    if act is Act.RELU6:
        return nn.ReLU6(inplace=True)
    if act is Act.HSWISH:
        return nn.Hardswish(inplace=True)
    if act is Act.SWISH:
        return nn.SiLU(inplace=True)
    return nn.Identity()


class ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: Act = Act.RELU):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            activation(act),
        )


class SqueezeExcite(nn.Module):
    """Pool, 1×1 conv to ``squeeze`` + act, 1×1 conv back + gate, scale.

    MobileNetV3's form (ReLU, hard-sigmoid) for every block activation except swish,
    whose blocks use EfficientNet's (swish, sigmoid). Neither has weights, so the
    module's state dict is the same for both.
    """

    def __init__(self, channels: int, squeeze: int, act: Act = Act.RELU):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        swish = act is Act.SWISH
        self.act = nn.SiLU(inplace=True) if swish else nn.ReLU(inplace=True)
        self.gate = nn.Sigmoid() if swish else nn.Hardsigmoid(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


class InvertedResidual(nn.Module):
    """Expand (1×1) → depthwise (k×k) → squeeze-excite → project (1×1, linear) → residual."""

    def __init__(self, cin: int, block: Bneck, residual: bool):
        super().__init__()
        self.expand = ConvBNAct(cin, block.exp, 1, act=block.act) if block.exp != cin else nn.Identity()
        self.depthwise = ConvBNAct(block.exp, block.exp, block.kernel, block.stride, groups=block.exp, act=block.act)
        self.se = SqueezeExcite(block.exp, block.se, block.act) if block.se else nn.Identity()
        self.project = ConvBNAct(block.exp, block.out, 1, act=Act.NONE)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class DepthwiseSeparable(nn.Sequential):
    def __init__(self, cin: int, block: DepthSep):
        super().__init__(
            ConvBNAct(cin, cin, block.kernel, block.stride, groups=cin, act=block.act),
            ConvBNAct(cin, block.out, 1, act=block.act),
        )


def build_block(layer: Layer) -> nn.Module:
    b = layer.block
    if isinstance(b, Conv):
        return ConvBNAct(layer.cin, b.out, b.kernel, b.stride, act=b.act)
    if isinstance(b, DepthSep):
        return DepthwiseSeparable(layer.cin, b)
    if isinstance(b, Bneck):
        return InvertedResidual(layer.cin, b, layer.residual)
    raise TypeError(f"unknown block {b!r}")


class Classifier(nn.Module):
    """Head: optional 1×1 conv, global average pooling, optional hidden FC, dropout, linear."""

    def __init__(self, net: Network, num_classes: int):
        super().__init__()
        h, c = net.head, net.final_channels
        self.conv = ConvBNAct(c, h.conv, 1, act=h.conv_act) if h.conv else nn.Identity()
        c = h.conv or c
        self.hidden = nn.Sequential(nn.Linear(c, h.hidden), activation(h.hidden_act)) if h.hidden else nn.Identity()
        c = h.hidden or c
        self.dropout = nn.Dropout(h.dropout)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).mean((2, 3))
        return self.fc(self.dropout(self.hidden(x)))


class MnasModel(nn.Module):
    """A network built from data; ``self.arch`` keeps the architecture it came from."""

    def __init__(self, arch: Network, num_classes: int = 1000):
        super().__init__()
        self.arch = arch
        layers = list(arch.layers())
        self.stem = build_block(layers[0])
        self.blocks = nn.Sequential(*(build_block(layer) for layer in layers[1:]))
        self.head = Classifier(arch, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


def init_weights(module: nn.Module) -> None:
    """The MobileNet reference initialisation (kaiming fan-out convs, small-normal linears)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def build(arch: Network, num_classes: int = 1000) -> MnasModel:
    """Build ``arch`` as a module for any input resolution and ``num_classes`` outputs."""
    return MnasModel(arch, num_classes)
