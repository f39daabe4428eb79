"""The ``train`` evaluator: train a network from scratch for a short budget, report validation top-1.

This is ground truth at proxy scale (MnasNet trained each sampled model for 5
epochs on a 50,000-image ImageNet proxy). The recipe is the standard one: SGD
with Nesterov momentum (or RMSProp), cosine learning-rate decay after a short
linear warm-up, label smoothing, weight decay on convolution and linear weights
only, random crop (4-pixel padding) and horizontal flips. Seeded: on CPU the same
seed gives the same top-1 (deterministic algorithms, one seeded generator for
shuffling and augmentation). Uses all cores unless told otherwise; trains
channels-last (about 2x faster than channels-first for these depthwise networks
on CPU as well, see ``benchmarks/bench_train.py``), with bfloat16 autocast on CUDA.

Small inputs: ImageNet networks downsample 32×; at 32×32 that leaves a 1×1 map.
:func:`adapt_small_input` turns the earliest stride-2 layers (the stem first)
into stride 1 — a transform of the :class:`~mnas.arch.Network` data, so the
trained architecture is explicit (``small_input="auto"`` keeps the final
feature map at least 4×4; an integer sets how many layers to change; 0 = none).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnas.accuracy.base import Evaluator
from mnas.arch import Network
from mnas.errors import MnasError

OPTIMIZERS = ("sgd", "rmsprop")


def adapt_small_input(net: Network, remove: int | str = "auto", min_final: int = 4) -> Network:
    """Set the stride of the first ``remove`` stride-2 layers (stem included) to 1.

    ``remove="auto"`` removes as few as needed for the last feature map to be at
    least ``min_final``×``min_final`` (0 for a network already made for its resolution).
    """
    strided = [i for i, layer in enumerate(net.layers()) if layer.block.stride == 2]  # 0 = stem
    if remove == "auto":
        remove = 0
        while remove < len(strided) and _final_size(net, strided[:remove]) < min_final:
            remove += 1
    if not isinstance(remove, int) or remove < 0:
        raise MnasError(f"small_input must be 'auto' or a count >= 0, got {remove!r}")
    if remove == 0:
        return net
    if remove > len(strided):
        raise MnasError(f"small_input={remove}: the network has only {len(strided)} stride-2 layers")
    return _unstride(net, strided[:remove])


def _unstride(net: Network, positions: list[int]) -> Network:
    stem = dataclasses.replace(net.stem, stride=1) if 0 in positions else net.stem
    blocks = tuple(dataclasses.replace(b, stride=1) if i + 1 in positions else b for i, b in enumerate(net.blocks))
    return net.replace(stem=stem, blocks=blocks)


def _final_size(net: Network, positions: list[int]) -> int:
    return _unstride(net, positions).final_size


@dataclass(frozen=True)
class TrainConfig:
    """Everything that changes a proxy-training result (saved in each cache key)."""

    dataset: str = "cifar10-folder"
    data_dir: str | None = None
    epochs: float = 1.0
    steps: int | None = None  # overrides epochs when given
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float | None = None  # None: 0.1 × batch/128 for SGD, 0.01 × batch/128 for RMSProp
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    warmup: float = 0.03  # fraction of the steps with a linear warm-up
    resolution: int | None = None  # None: the dataset's own
    small_input: Any = "auto"
    train_size: int | None = None  # a stratified proxy subset of the training split
    val_size: Any = 5000  # count or fraction of train held out for validation
    split_seed: int = 0
    eval_split: str = "val"  # "test" only for final reporting
    augment: bool = True
    seed: int = 0
    threads: int | None = None  # None: all cores
    device: str = "auto"
    channels_last: bool = True  # ~2x faster on this CPU too (benchmarks/bench_train.py)

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise MnasError(f"train evaluator: unknown optimizer {self.optimizer!r} (choose {', '.join(OPTIMIZERS)})")
        if self.eval_split not in ("val", "test"):
            raise MnasError(f"train evaluator: eval_split must be 'val' or 'test', got {self.eval_split!r}")
        if self.epochs <= 0 and not self.steps:
            raise MnasError("train evaluator: give epochs > 0 or steps > 0")
        if self.batch_size < 1:
            raise MnasError("train evaluator: batch_size must be >= 1")


class TrainEvaluator(Evaluator):
    """Proxy training from scratch; ``top1``/``loss`` on the held-out validation split."""

    name = "train"
    Config = TrainConfig

    def __init__(self, space=None, cache: str | Path | None = None, progress: bool = False, **options):
        super().__init__(space, cache)
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise MnasError(f"train evaluator: unknown option(s) {', '.join(unknown)} (allowed: {', '.join(sorted(fields))})")
        self.cfg = TrainConfig(**options)
        self.cfg.check()
        self.progress = progress
        self._data = None

    def config(self) -> dict:
        d = dataclasses.asdict(self.cfg)
        for k in ("threads", "device", "data_dir", "channels_last"):  # no change to the result beyond float rounding
            d.pop(k)
        return {"evaluator": self.name, **d}

    # -- data
    def data(self):
        """``(train, eval, dataset)`` splits, loaded once per evaluator."""
        if self._data is None:
            from mnas.data import load_dataset

            ds = load_dataset(self.cfg.dataset, self.cfg.data_dir, resolution=self.cfg.resolution, progress=self.progress)
            train, val = ds.split(self.cfg.val_size, seed=self.cfg.split_seed, train_size=self.cfg.train_size)
            self._data = (train, ds.test if self.cfg.eval_split == "test" else val, ds)
        return self._data

    def trained_network(self, net: Network) -> Network:
        """The architecture actually trained: ``net`` at the training resolution, small-input adapted."""
        _, _, ds = self.data()
        res = self.cfg.resolution or ds.resolution
        return adapt_small_input(net.replace(resolution=res, in_channels=ds.channels), self.cfg.small_input)

    def _evaluate(self, net: Network, sample: dict | None) -> dict:
        train, val, ds = self.data()
        return train_and_evaluate(self.trained_network(net), train, val, ds, self.cfg, progress=self.progress)


def train_and_evaluate(net: Network, train, val, ds, cfg: TrainConfig, progress: bool = False) -> dict:
    """Train ``net`` from scratch on ``train`` and measure top-1 and loss on ``val``."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from mnas.model import build

    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else ("cpu" if cfg.device == "auto" else cfg.device))
    cuda = device.type == "cuda"
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    if not cuda:
        torch.use_deterministic_algorithms(True, warn_only=True)
    t0 = time.perf_counter()
    try:
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        model = build(net, ds.num_classes).to(device)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)
        mean = torch.tensor(ds.mean, device=device).view(1, -1, 1, 1)
        std = torch.tensor(ds.std, device=device).view(1, -1, 1, 1)
        xtr = torch.from_numpy(np.ascontiguousarray(train.x)).to(device)
        ytr = torch.from_numpy(train.y).to(device)
        n = len(ytr)
        bs = min(cfg.batch_size, n)
        per_epoch = n // bs
        steps = cfg.steps or max(1, int(round(cfg.epochs * per_epoch)))
        decay, no_decay = [], []
        for p in model.parameters():
            (decay if p.ndim > 1 else no_decay).append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        if cfg.optimizer == "sgd":
            lr = cfg.lr if cfg.lr is not None else 0.1 * bs / 128
            opt = torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
        else:
            lr = cfg.lr if cfg.lr is not None else 0.01 * bs / 128
            opt = torch.optim.RMSprop(groups, lr=lr, alpha=0.9, momentum=0.9, eps=0.0316)
        warm = int(cfg.warmup * steps)

        def lr_at(step: int) -> float:
            if step < warm:
                return lr * (step + 1) / warm
            t = (step - warm) / max(1, steps - warm)
            return 0.5 * lr * (1 + math.cos(math.pi * t))

        res = net.resolution
        model.train()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc="training", unit="step", leave=False)
        order = torch.randperm(n, generator=gen)
        pos, seen, loss_sum = 0, 0, 0.0
        for step in range(steps):
            if pos + bs > n:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + bs]
            pos += bs
            x = _prepare(xtr[idx.to(device)], mean, std, res, fmt)
            if cfg.augment:
                x = _augment(x, gen, ds.hflip, fmt)
            y = ytr[idx.to(device)]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                out = model(x)
                loss = F.cross_entropy(out.float(), y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lv = float(loss.detach())
            if not math.isfinite(lv):
                break
            loss_sum += lv
            seen += len(idx)
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{lv:.3f}")
        if bar is not None:
            bar.close()
        train_s = time.perf_counter() - t0
        top1, vloss = _validate(model, val, mean, std, res, fmt, device, cuda)
        return {
            "top1": top1,
            "loss": vloss,
            "train_loss": loss_sum / max(1, step + 1),
            "steps": steps,
            "images": seen,
            "images_per_s": seen / train_s if train_s > 0 else math.nan,
            "cost_s": time.perf_counter() - t0,
            "device": str(device),
        }
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def _prepare(xb, mean, std, res: int, fmt):
    import torch.nn.functional as F

    x = xb.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[-1] != res:
        x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=x.shape[-1] > res)
    return ((x - mean) / std).contiguous(memory_format=fmt)


def _augment(x, gen, hflip: bool, fmt):
    """Random crop with 1/8-size zero padding and (optionally) horizontal flips, from ``gen``."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape
    pad = max(1, h // 8)
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
    return out.contiguous(memory_format=fmt)


def _validate(model, val, mean, std, res, fmt, device, cuda, batch: int = 500) -> tuple[float, float]:
    import numpy as np
    import torch
    import torch.nn.functional as F

    model.eval()
    correct, loss_sum = 0, 0.0
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        for i in range(0, len(val), batch):
            x = _prepare(torch.from_numpy(np.ascontiguousarray(val.x[i : i + batch])).to(device), mean, std, res, fmt)
            y = torch.from_numpy(val.y[i : i + batch]).to(device)
            out = model(x).float()
            loss_sum += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
    model.train()
    n = len(val)
    loss = loss_sum / n
    return 100.0 * correct / n, loss if math.isfinite(loss) else math.nan
