"""Train one network from scratch with a :class:`~mnas.train.recipes.Recipe`, on one or many processes.

:func:`train` runs in every process of a ``torchrun`` job (or alone): it joins the process
group named by the ``RANK``/``WORLD_SIZE`` environment (gloo on CPU, nccl on CUDA), wraps
the model in ``DistributedDataParallel``, and feeds each rank its shard of every global
batch (:class:`mnas.data.folder.ShardSampler`). Only rank 0 writes. On CUDA the forward pass
runs under bfloat16 autocast, channels-last.

The run folder: ``config.yaml`` (the recipe, the architecture, the process count),
``arch.yaml`` (the network as trained), ``metrics.csv``/``.parquet`` (one row per epoch),
``best.pt``/``last.pt`` (state dicts for :func:`mnas.model.build`, loadable with
``torch.load(..., weights_only=True)``; the moving average when ``ema_decay`` > 0),
``checkpoint.pt`` (everything a resume needs), ``curve.png`` and ``summary.json``.

Resume: a checkpoint is written atomically at the end of every epoch (and every
``save_every_steps`` steps). Every random draw is a function of the seed and the position
(model initialisation of ``seed``; data order of ``(seed, epoch)``; augmentation of
``(seed, epoch, image)``; dropout reseeded from ``(seed, rank, step)`` at every step), so a
run killed anywhere and resumed from its checkpoint ends with the same weights as one never
interrupted (bitwise on CPU). Ctrl-C/SIGTERM stop at the next step boundary: the checkpoint
is saved there and the command exits 130.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from mnas.arch import Network
from mnas.errors import MnasError
from mnas.train.recipes import Recipe

CHECKPOINT = "checkpoint.pt"
METRIC_COLUMNS = ("epoch", "step", "lr", "train_loss", "val_loss", "val_top1", "val_top5", "images", "images_per_s",
                  "epoch_s")


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def dist_env() -> Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 outside one)."""
    return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def _init_dist(d: Dist, cuda: bool) -> None:
    import datetime

    import torch.distributed as tdist

    if d.world > 1 and not tdist.is_initialized():
        tdist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=10))


# --------------------------------------------------------------------------- data


@dataclass
class Data:
    train: Any
    val: Any
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    channels: int
    resolution: int  # the images' own resolution for in-memory data, else None-equivalent 0
    streamed: bool


def prepare_data(recipe: Recipe, net: Network, progress: bool = False) -> tuple[Data, Network]:
    """The training and validation datasets of ``recipe`` and the network as it will be trained
    (resolution, input channels, small-input strides)."""
    from mnas.arch import adapt_small_input
    from mnas.data import folder as F

    if recipe.dataset in ("imagenet-folder", "folder"):
        if recipe.data_dir is None:
            raise MnasError(f"dataset {recipe.dataset} needs --data-dir: a folder (or .tar/.tar.gz) with "
                            "train/<class>/* and val/<class>/* images")
        size = recipe.resolution or net.resolution
        splits = F.scan_folder(recipe.data_dir)
        train = splits["train"]
        val = splits.get("val") or splits.get("test")
        if recipe.holdout is not None:
            hold = F.balanced_subset(train.labels, recipe.holdout, recipe.seed)
            rest = np.setdiff1d(np.arange(len(train)), hold)
            val, train = train.subset(hold.tolist()), train.subset(rest.tolist())
        if recipe.subset is not None:
            train = train.subset(F.balanced_subset(train.labels, recipe.subset, recipe.seed + 1).tolist())
        if recipe.val_subset is not None:
            val = val.subset(F.balanced_subset(val.labels, recipe.val_subset, recipe.seed + 2).tolist())
        tt = F.Transform(size, True, recipe.augment, recipe.min_crop, recipe.crop_fraction, True, recipe.seed)
        vt = F.Transform(size, False, recipe.augment, recipe.min_crop, recipe.crop_fraction, True, recipe.seed)
        data = Data(F.FolderImages(train, tt), F.FolderImages(val, vt), train.classes, F.IMAGENET_MEAN,
                    F.IMAGENET_STD, 3, size, True)
        return data, adapt_small_input(net.replace(resolution=size, in_channels=3), recipe.small_input)

    from mnas.data import load_dataset

    ds = load_dataset(recipe.dataset, recipe.data_dir, progress=progress)
    tr, va = ds.train, ds.test
    if recipe.holdout is not None:
        tr, va = ds.split(recipe.holdout, seed=recipe.seed)
    if recipe.subset is not None:
        keep = F.balanced_subset(tr.y, recipe.subset, recipe.seed + 1)
        tr = type(tr)(tr.x[keep], tr.y[keep])
    if recipe.val_subset is not None:
        keep = F.balanced_subset(va.y, recipe.val_subset, recipe.seed + 2)
        va = type(va)(va.x[keep], va.y[keep])
    size = recipe.resolution or ds.resolution
    tt = F.Transform(size, True, recipe.augment, recipe.min_crop, recipe.crop_fraction, ds.hflip, recipe.seed)
    vt = F.Transform(size, False, recipe.augment, recipe.min_crop, recipe.crop_fraction, ds.hflip, recipe.seed)
    trained = adapt_small_input(net.replace(resolution=size, in_channels=ds.channels), recipe.small_input)
    return Data(F.ArrayImages(tr.x, tr.y, tt), F.ArrayImages(va.x, va.y, vt), ds.classes, ds.mean, ds.std,
                ds.channels, size, False), trained


# --------------------------------------------------------------------------- model pieces


def build_model(net: Network, recipe: Recipe, num_classes: int):
    """:func:`mnas.model.build` with the recipe's dropout and batch-norm momentum, seeded by ``recipe.seed``."""
    import torch

    from mnas.model import build

    if recipe.dropout is not None:
        net = net.replace(head=dataclasses.replace(net.head, dropout=recipe.dropout))
    torch.manual_seed(recipe.seed)
    model = build(net, num_classes)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = recipe.bn_momentum
    return model, net


class EMA:
    """TensorFlow's ``ExponentialMovingAverage(decay, num_updates)`` of a model's state: decay
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates; integer buffers are copied."""

    def __init__(self, model, decay: float):
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def update(self, model) -> None:
        import torch

        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        with torch.no_grad():
            for k, v in model.state_dict().items():
                e = self.state[k]
                if e.is_floating_point():
                    e.mul_(d).add_(v.detach(), alpha=1 - d)
                else:
                    e.copy_(v)


def lr_at_step(recipe: Recipe, step: int, steps: int, steps_per_epoch: int) -> float:
    from mnas import training

    lr = recipe.scaled_lr
    warm = int(round(recipe.warmup_epochs * steps_per_epoch))
    if recipe.schedule == "exponential":
        return training.lr_exponential(step, steps_per_epoch, lr, warm, recipe.decay_every_epochs, recipe.decay_factor)
    return training.lr_at(step, steps, lr, warm, recipe.schedule)


def _cpu_state(sd: dict) -> dict:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in sd.items()}


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(run_dir: str | Path) -> dict | None:
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
        raise MnasError(f"{path} is not a readable checkpoint ({type(e).__name__}); delete it to start over") from None


# --------------------------------------------------------------------------- the loop


def train(net: Network, recipe: Recipe, out: str | Path, *, progress: bool = True,
          log: Callable[[str], None] = print, stop: Any = None) -> dict:
    """Train ``net`` with ``recipe`` into run folder ``out`` (resuming from its checkpoint if there is one);
    returns the summary (rank 0's; other ranks return the same numbers).

    In a job of several processes, a lost peer (its collective fails here) is one
    :class:`~mnas.errors.MnasError` line naming ``--resume``; the last checkpoint stands.
    """
    d = dist_env()
    try:
        return _train(net, recipe, out, progress=progress, log=log, stop=stop)
    except RuntimeError as e:
        if d.world == 1:
            raise
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise MnasError(f"rank {d.rank}: another training process was lost ({first}); the last checkpoint is kept: "
                        f"continue with `mnas train --resume {out}`") from None


def _train(net: Network, recipe: Recipe, out: str | Path, *, progress: bool, log: Callable[[str], None],
           stop: Any) -> dict:
    import torch
    import torch.nn.functional as Fn

    from mnas import training
    from mnas.data import folder as F

    d = dist_env()
    want_cuda = recipe.device == "cuda" or (recipe.device == "auto" and torch.cuda.is_available())
    if recipe.device == "cuda" and not torch.cuda.is_available():
        raise MnasError("recipe device=cuda, but torch sees no CUDA device")
    device = torch.device(f"cuda:{d.local_rank}" if want_cuda else "cpu")
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.set_device(device)
    _init_dist(d, cuda)
    import torch.distributed as tdist

    out = Path(out)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(recipe.threads or max(1, (os.cpu_count() or 1) // d.world))
    if not cuda:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        data, trained = prepare_data(recipe, net, progress=progress and d.main)
        model, trained = build_model(trained, recipe, len(data.classes))
        if d.main:
            from mnas.arch import save_network

            save_network(trained, out / "arch.yaml")  # the network as trained: `mnas.model.build` of it takes best.pt
        fmt = torch.channels_last if recipe.channels_last else torch.contiguous_format
        model = model.to(device).to(memory_format=fmt)  # type: ignore[call-overload]
        opt = training.make_optimizer(model, recipe.optimizer, recipe.scaled_lr, recipe.weight_decay, recipe.momentum)
        ema = EMA(model, recipe.ema_decay) if recipe.ema_decay > 0 else None
        n = len(data.train)
        sampler0 = F.ShardSampler(n, recipe.batch_size, rank=d.rank, world=d.world, accum=recipe.accum, seed=recipe.seed)
        spe = sampler0.steps_per_epoch
        total = recipe.steps if recipe.steps is not None else max(1, int(round(recipe.epochs * spe)))
        epochs = math.ceil(total / spe)

        ck = load_checkpoint(out)
        epoch, start_step, gstep, best, history = 0, 0, 0, -1.0, []
        if ck is not None:
            if int(ck.get("world", 1)) * int(ck.get("accum", 1)) != d.world * recipe.accum:
                log(f"note: resuming with {d.world} process(es) x accum {recipe.accum} (the checkpoint had "
                    f"{ck.get('world')} x {ck.get('accum')}): the same global batches, other shards per process")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            if ema is not None and ck.get("ema"):
                ema.state = {k: v.to(device) for k, v in ck["ema"].items()}
                ema.updates = int(ck["ema_updates"])
            epoch, start_step, gstep = int(ck["epoch"]), int(ck["step"]), int(ck["global_step"])
            best, history = float(ck["best_top1"]), list(ck["history"])
            if d.main:
                log(f"resumed {out} at epoch {epoch + 1} step {start_step} ({gstep}/{total} steps done)")
        ddp = None
        if d.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        net_fwd = ddp if ddp is not None else model
        mean, std = training.stats(data.mean, data.std, device)

        def to_input(xb):
            x = xb.to(device, non_blocking=True).float().div_(255.0)
            x = (x - mean) / std
            if data.channels == 1 and trained.in_channels != 1:
                x = x.expand(-1, trained.in_channels, -1, -1)
            return x.contiguous(memory_format=fmt)

        def checkpoint(ep: int, st: int) -> None:
            if not d.main:
                return
            _atomic_save({"model": _cpu_state(model.state_dict()), "optimizer": opt.state_dict(),
                          "ema": _cpu_state(ema.state) if ema is not None else {},
                          "ema_updates": ema.updates if ema is not None else 0,
                          "epoch": ep, "step": st, "global_step": gstep, "best_top1": best, "history": history,
                          "world": d.world, "accum": recipe.accum}, out / CHECKPOINT)

        def stop_requested() -> bool:
            flag = bool(stop is not None and stop.stopped)
            if d.world > 1:
                t = torch.tensor([1.0 if flag else 0.0], device=device)
                tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
                flag = bool(t.item() > 0)
            return flag

        hint = f" (saved; resume with `mnas train --resume {out}`)"
        t_run = time.perf_counter()
        while gstep < total:
            sampler = F.ShardSampler(n, recipe.batch_size, rank=d.rank, world=d.world, accum=recipe.accum,
                                     seed=recipe.seed, epoch=epoch, start_step=start_step)
            it = iter(F.loader(data.train, sampler, recipe.workers, pin_memory=cuda))
            steps_here = min(spe - start_step, total - gstep)
            bar = None
            if progress and d.main:
                from tqdm import tqdm

                bar = tqdm(total=steps_here, desc=f"epoch {epoch + 1}/{epochs}", unit="step", leave=False,
                           file=sys.stderr, dynamic_ncols=True)
            t0, loss_sum, images = time.perf_counter(), 0.0, 0
            model.train()
            for _ in range(steps_here):
                lr = lr_at_step(recipe, gstep, total, spe)
                training.set_lr(opt, lr)
                step_loss = 0.0
                for m in range(recipe.accum):
                    # dropout masks: a function of the step and the shard (the same on 2 processes as on 1 x accum 2)
                    torch.manual_seed(recipe.seed * 1_000_003 + gstep * 4099 + d.rank * recipe.accum + m)
                    xb, yb = next(it)
                    x, y = to_input(xb), yb.to(device, non_blocking=True)
                    sync = ddp is None or m == recipe.accum - 1
                    ctx = ddp.no_sync() if not sync and ddp is not None else _null()
                    with ctx:
                        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and recipe.bf16):
                            outp = net_fwd(x)
                        loss = Fn.cross_entropy(outp.float(), y, label_smoothing=recipe.label_smoothing)
                        (loss / recipe.accum).backward()
                    step_loss += float(loss.detach()) / recipe.accum
                    images += len(y)
                opt.step()
                opt.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(model)
                gstep += 1
                start_step += 1
                loss_sum += step_loss
                if bar is not None:
                    bar.update()
                    bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{lr:.3g}")
                if not math.isfinite(step_loss):
                    raise MnasError(f"training diverged at step {gstep} (loss {step_loss}); lower lr "
                                    f"(now {recipe.scaled_lr:g} at batch {recipe.batch_size})")
                if stop_requested():
                    checkpoint(epoch, start_step)
                    if bar is not None:
                        bar.close()
                    from mnas.io import Interrupted, signal_name

                    signum = getattr(stop, "signum", None)
                    raise Interrupted(f"interrupted by {signal_name(signum)} at step {gstep}{hint}", signum)
                if recipe.save_every_steps and gstep % recipe.save_every_steps == 0 and gstep < total:
                    checkpoint(epoch, start_step)
            del it
            if bar is not None:
                bar.close()
            train_s = time.perf_counter() - t0
            vtop1, vtop5, vloss = evaluate(model if ema is None else _ema_model(model, ema), data.val, recipe,
                                           d, device, to_input, cuda)
            if start_step >= spe:
                epoch, start_step = epoch + 1, 0
            row = {"epoch": gstep / spe, "step": gstep, "lr": lr, "train_loss": loss_sum / max(1, steps_here),
                   "val_loss": vloss, "val_top1": vtop1, "val_top5": vtop5, "images": images * d.world,
                   "images_per_s": images * d.world / train_s if train_s > 0 else math.nan, "epoch_s": train_s}
            history.append(row)
            improved = vtop1 > best
            best = max(best, vtop1)
            if d.main:
                weights = _cpu_state(ema.state if ema is not None else model.state_dict())
                if improved:
                    _atomic_save(weights, out / "best.pt")
                _atomic_save(weights, out / "last.pt")
                checkpoint(epoch, start_step)
                write_metrics(out, history)
                log(f"epoch {row['epoch']:.2f}/{total / spe:.2f}  step {gstep}/{total}  loss {row['train_loss']:.4f}  "
                    f"val top-1 {vtop1:.2f} %  top-5 {vtop5:.2f} %  val loss {vloss:.4f}  "
                    f"{row['images_per_s']:.0f} img/s  lr {lr:.4g}")
        summary = summarize(trained, data, recipe, history, d, device, time.perf_counter() - t_run)
        if d.main:
            from mnas.run import write_json

            write_json(out / "summary.json", summary)
            try:
                plot_curves(history, out / "curve.png")
            except Exception as e:  # noqa: BLE001 - a figure must not lose a finished run
                log(f"note: curve.png not drawn ({type(e).__name__}: {e})")
        if d.world > 1:
            tdist.barrier()
            tdist.destroy_process_group()
        return summary
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _ema_model(model, ema: EMA):
    import copy

    m = copy.deepcopy(model)
    m.load_state_dict(ema.state)
    return m


def evaluate(model, dataset, recipe: Recipe, d: Dist, device, to_input, cuda: bool) -> tuple[float, float, float]:
    """(top-1 %, top-5 %, mean cross-entropy) on ``dataset``, each rank a stride of it, summed over ranks."""
    import torch
    import torch.nn.functional as Fn

    from mnas import training
    from mnas.data import folder as F

    sampler = F.ShardSampler(len(dataset), max(d.world, recipe.batch_size // max(1, recipe.accum)), rank=d.rank,
                             world=d.world, shuffle=False)
    was = model.training
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)
    with torch.no_grad():
        for xb, yb in F.loader(dataset, sampler, recipe.workers, pin_memory=cuda):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and recipe.bf16):
                outp = model(to_input(xb))
            outp, y = outp.float(), yb.to(device)
            c1, c5 = training.topk_correct(outp, y, (1, 5))
            sums += torch.tensor([c1, c5, float(Fn.cross_entropy(outp, y, reduction="sum")), len(y)], dtype=torch.float64)
    model.train(was)
    if d.world > 1:
        import torch.distributed as tdist

        s = sums.to(device)
        tdist.all_reduce(s)
        sums = s.cpu()
    c1, c5, loss, count = sums.tolist()
    if count == 0:
        raise MnasError("the validation split is empty")
    return 100.0 * c1 / count, 100.0 * c5 / count, loss / count


def write_metrics(out: Path, history: list[dict]) -> None:
    import pandas as pd

    from mnas.run import write_table

    df = pd.DataFrame(history, columns=list(METRIC_COLUMNS))
    write_table(df, out / "metrics.csv")
    try:
        write_table(df, out / "metrics.parquet")
    except (ImportError, ValueError):  # no parquet engine installed: the CSV stands
        pass


def curve_data(history: list[dict]) -> dict[str, list[float]]:
    """The training curves as columns (computed first, drawn by :func:`plot_curves`)."""
    return {k: [float(r[k]) for r in history] for k in ("epoch", "train_loss", "val_loss", "val_top1", "val_top5")}


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = curve_data(history)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(c["epoch"], c["train_loss"], "o-", label="train")
    a.plot(c["epoch"], c["val_loss"], "s-", label="validation")
    a.set_xlabel("epoch")
    a.set_ylabel("cross-entropy")
    a.legend()
    b.plot(c["epoch"], c["val_top1"], "o-", label="top-1")
    b.plot(c["epoch"], c["val_top5"], "s-", label="top-5")
    b.set_xlabel("epoch")
    b.set_ylabel("validation accuracy (%)")
    b.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def summarize(net: Network, data: Data, recipe: Recipe, history: list[dict], d: Dist, device, elapsed_s: float) -> dict:
    from mnas.counting import count

    c = count(net, len(data.classes))
    best = max(history, key=lambda r: r["val_top1"]) if history else {}
    last = history[-1] if history else {}
    return {
        "arch": str(net),
        "top1": best.get("val_top1", math.nan),  # the best epoch's (the weights in best.pt)
        "top5": best.get("val_top5", math.nan),
        "best_epoch": best.get("epoch", math.nan),
        "final_top1": last.get("val_top1", math.nan),
        "final_top5": last.get("val_top5", math.nan),
        "final_loss": last.get("val_loss", math.nan),
        "steps": last.get("step", 0),
        "epochs": last.get("epoch", 0.0),
        "train_images": len(data.train),
        "val_images": len(data.val),
        "classes": len(data.classes),
        "params": c.params,
        "madds": c.madds,
        "processes": d.world,
        "device": str(device),
        "images_per_s": float(np.mean([r["images_per_s"] for r in history])) if history else math.nan,
        "elapsed_s": elapsed_s,
    }
