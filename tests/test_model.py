"""The builder against a second method: forward hooks on the built module."""

import pytest
import torch
from torch import nn

from mnas import zoo
from mnas.counting import count
from mnas.model import build


def hook_counts(model: nn.Module, resolution: int) -> tuple[int, int, int]:
    """Multiply-adds of every Conv2d/Linear and the elements they write, measured by forward hooks."""
    madds = acts = 0

    def hook(m, inp, out):
        nonlocal madds, acts
        if isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1] * (m.in_channels // m.groups)
            madds += k * out.numel()
        else:
            madds += m.in_features * m.out_features
        acts += out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, resolution, resolution))
    for h in handles:
        h.remove()
    params = sum(p.numel() for p in model.parameters())
    return params, madds, acts


@pytest.mark.parametrize("name", zoo.names())
def test_analytic_counts_equal_hook_counts(name):
    net = zoo.get(name).with_resolution(96)  # any resolution: small to keep the suite fast
    c = count(net)
    assert hook_counts(build(net), 96) == (c.params, c.madds, c.activations)


def test_any_resolution_and_classes():
    model = build(zoo.get("mobilenet_v3_small").with_resolution(32), num_classes=10).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert model(torch.zeros(1, 3, 57, 61)).shape == (1, 10)


def test_residual_is_used_where_shapes_allow():
    model = build(zoo.get("mobilenet_v3_large"))
    flags = [b.residual for b in model.blocks]
    assert flags == [True, False, True, False, True, True, False, True, True, True, False, True, False, True, True]
