"""ONNX export of a built architecture (legacy exporter: no onnxscript needed)."""

from __future__ import annotations

from pathlib import Path

from mnas.arch import Network


def export_onnx(net: Network, path: str | Path, num_classes: int = 1000, model=None, batch: int = 1) -> Path:
    """Write ``net`` (or an already built ``model`` of it) as an ONNX file, eval mode, fixed batch."""
    import torch

    from mnas.io import atomic_output
    from mnas.model import build

    path = Path(path)
    model = (model or build(net, num_classes)).eval()
    x = torch.randn(batch, net.in_channels, net.resolution, net.resolution)
    with atomic_output(path) as tmp, torch.no_grad():  # a full disk leaves no half-written model
        torch.onnx.export(model, (x,), str(tmp), input_names=["input"], output_names=["logits"],
                          opset_version=17, dynamo=False)
    return path
