"""One training stack: input tensors, augmentation, parameter groups, schedule, train step, validation.

Proxy training (:mod:`mnas.accuracy.train`) and NetAdapt fine-tuning
(:mod:`mnas.netadapt.finetune`) both train with these pieces, so a top-1 from
one is measured the same way as a top-1 from the other:

- :func:`to_input` — uint8 ``N×H×W×C`` images (as :mod:`mnas.data` holds them) to
  normalised float ``N×C×H×W`` at a given size; one-channel images repeated
  when the network takes three.
- :func:`augment` — random crop with 1/8-size zero padding (4 pixels at 32×32)
  and, where the dataset allows it, horizontal flips; every draw comes from one
  ``torch.Generator``, so a seed fixes it.
- :func:`param_groups` — one weight-decay split: decay on convolution and
  linear weights, none on batch-norm parameters and biases (every 0-/1-d tensor).
- :func:`lr_at` — one schedule: linear warm-up over ``warmup`` steps, then
  cosine decay to 0 at ``steps`` (or a constant rate after the warm-up).
- :func:`make_optimizer`, :func:`train_step`, :func:`validate`.

Nothing here reads data or imports torch at import time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mnas.errors import MnasError

if TYPE_CHECKING:  # annotations only
    import torch

SCHEDULES = ("cosine", "constant")
OPTIMIZERS = ("sgd", "rmsprop")


# --------------------------------------------------------------------------- tensors


def to_input(xb: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, size: int, channels: int | None = None,
             memory_format: Any = None) -> torch.Tensor:
    """uint8 NHWC ``xb`` -> float NCHW at ``size``×``size``, normalised by ``mean``/``std`` (``1×C×1×1``).

    Resized bilinearly (antialiased when shrinking) before normalising; one-channel
    images are repeated to ``channels`` when that is more than one.
    """
    import torch
    import torch.nn.functional as F

    x = xb.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)
    x = (x - mean) / std
    if channels is not None and x.shape[1] == 1 and channels != 1:
        x = x.expand(-1, channels, -1, -1)
    return x.contiguous(memory_format=memory_format or torch.contiguous_format)


def stats(mean, std, device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """A dataset's per-channel ``mean``/``std`` (sequences) as ``1×C×1×1`` tensors for :func:`to_input`."""
    import torch

    return (torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1),
            torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1))


# --------------------------------------------------------------------------- augmentation


def augment(x: torch.Tensor, gen: torch.Generator, hflip: bool, pad: int | None = None,
            memory_format: Any = None) -> torch.Tensor:
    """Random crop of ``x`` (N×C×H×W) from its ``pad``-zero-padded copy, then (if ``hflip``) flip half.

    ``pad`` defaults to ``max(1, H // 8)``: 4 pixels at 32×32, the CIFAR recipe.
    Draws, in order, the vertical and horizontal offsets and (if ``hflip``) the
    flips from ``gen`` (a CPU generator); the output has ``x``'s shape.
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    pad = max(1, h // 8) if pad is None else pad
    if pad < 0:
        raise MnasError(f"augment: pad must be >= 0, got {pad}")
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h)).to(x.device)
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w)).to(x.device)
    bidx = torch.arange(n, device=x.device).view(n, 1, 1)
    out = xp.permute(0, 2, 3, 1)[bidx, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
    if hflip:
        flip = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        out = torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)
    return out.contiguous(memory_format=memory_format or torch.contiguous_format)


# --------------------------------------------------------------------------- optimisation


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two optimizer groups: ``weight_decay`` on weights of rank >= 2 (conv, linear), 0 on the rest
    (batch-norm scales and shifts, every bias). Each group also lists its parameter ``names``."""
    decay, no_decay, decay_names, no_decay_names = [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim > 1:
            decay.append(p)
            decay_names.append(name)
        else:
            no_decay.append(p)
            no_decay_names.append(name)
    return [{"params": decay, "weight_decay": weight_decay, "names": decay_names},
            {"params": no_decay, "weight_decay": 0.0, "names": no_decay_names}]


def make_optimizer(model: torch.nn.Module, name: str, lr: float, weight_decay: float,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum, or RMSProp (TF-style: alpha 0.9, eps 0.0316), over :func:`param_groups`."""
    import torch

    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=0.9, momentum=momentum, eps=0.0316)
    raise MnasError(f"unknown optimizer {name!r} (choose {', '.join(OPTIMIZERS)})")


def lr_at(step: int, steps: int, lr: float, warmup: int = 0, schedule: str = "cosine") -> float:
    """The learning rate of 0-based ``step`` of ``steps``.

    Steps ``0 .. warmup-1`` rise linearly to ``lr`` (``lr·(step+1)/warmup``); after
    that ``cosine`` decays as ``lr/2·(1 + cos(π·t))`` with
    ``t = (step - warmup) / (steps - warmup)`` (so ``lr`` right after the warm-up,
    0 at ``steps``), ``constant`` stays at ``lr``.
    """
    if schedule not in SCHEDULES:
        raise MnasError(f"unknown schedule {schedule!r} (choose {', '.join(SCHEDULES)})")
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    t = (step - warmup) / max(1, steps - warmup)
    return 0.5 * lr * (1 + math.cos(math.pi * min(1.0, t)))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
               label_smoothing: float = 0.0, cuda: bool = False) -> float:
    """One optimizer step on the batch ``(x, y)`` with (label-smoothed) cross-entropy; returns the loss.

    On CUDA the forward pass runs under bfloat16 autocast; the loss is taken in float32.
    """
    import torch
    import torch.nn.functional as F

    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        out = model(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


def validate(model: torch.nn.Module, x, y, mean: torch.Tensor, std: torch.Tensor, size: int,
             channels: int | None = None, memory_format: Any = None, device: Any = "cpu", cuda: bool = False,
             batch: int = 500) -> tuple[float, float]:
    """(top-1 in percent, mean cross-entropy) of ``model`` on uint8 NHWC images ``x`` (numpy or tensor) and labels ``y``.

    Runs in eval mode (batch-norm running statistics) and restores the model's mode.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F

    n = len(y)
    if n == 0:
        raise MnasError("validate: the validation split is empty (give a larger val_size)")
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        for i in range(0, n, batch):
            xb, yb = x[i:i + batch], y[i:i + batch]
            if isinstance(xb, np.ndarray):
                xb = torch.from_numpy(np.ascontiguousarray(xb))
            if isinstance(yb, np.ndarray):
                yb = torch.from_numpy(yb)
            xb = to_input(xb.to(device), mean, std, size, channels, memory_format)
            out = model(xb).float()
            yb = yb.to(device)
            loss_sum += float(F.cross_entropy(out, yb, reduction="sum"))
            correct += int((out.argmax(1) == yb).sum())
    model.train(was_training)
    loss = loss_sum / n
    return 100.0 * correct / n, loss if math.isfinite(loss) else math.nan


def lr_exponential(step: int, steps_per_epoch: int, lr: float, warmup: int = 0, every_epochs: float = 3.0,
                   factor: float = 0.99) -> float:
    """TensorFlow's staircase exponential decay (MnasNet, MobileNetV3): ``lr·factor^floor(step / (every_epochs·steps_per_epoch))``.

    Steps ``0 .. warmup-1`` rise linearly to ``lr`` as in :func:`lr_at`; the decay counts
    every step from 0, the warm-up's included (as TensorFlow's ``exponential_decay`` of the global step).
    """
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * factor ** math.floor(step / max(1e-9, every_epochs * steps_per_epoch))


def topk_correct(logits: torch.Tensor, y: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> list[int]:
    """How many rows of ``logits`` have the label ``y`` among their ``k`` highest scores, for each ``k``
    (``k`` is capped at the number of classes)."""
    top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hit = top == y.view(-1, 1)
    return [int(hit[:, :min(k, logits.shape[1])].any(dim=1).sum()) for k in ks]
