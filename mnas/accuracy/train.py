"""The ``train`` evaluator: train a network from scratch for a short budget, report validation top-1.

This is ground truth at proxy scale (MnasNet trained each sampled model for 5
epochs on a 50,000-image ImageNet proxy). The recipe is the standard one: SGD
with Nesterov momentum (or RMSProp), cosine learning-rate decay after a short
linear warm-up, label smoothing, weight decay on convolution and linear weights
only, random crop (4-pixel padding) and horizontal flips — the pieces of
:mod:`mnas.training`, shared with NetAdapt fine-tuning (``init_weights=FILE``
starts from a state dict instead of a fresh initialisation). Seeded: on CPU the same
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
from mnas.arch import Network, adapt_small_input  # noqa: F401  (adapt_small_input: its home was here)
from mnas.errors import MnasError
from mnas.protocols import Space
from mnas.training import OPTIMIZERS, SCHEDULES

# held-out validation images when ``val_size`` is not given: 5,000 (CIFAR-10 convention), fewer where the
# training split is small (digits has 1,437 training images; 360 as for ``mnas supernet``)
DEFAULT_VAL_SIZE = {"digits": 360}
VAL_SIZE = 5000


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
    schedule: str = "cosine"  # after the warm-up: cosine decay to 0, or constant (mnas.training.lr_at)
    init_weights: str | None = None  # a state-dict file (torch.save) to start from: fine-tuning instead of from scratch
    resolution: int | None = None  # None: the dataset's own
    small_input: Any = "auto"
    train_size: int | None = None  # a stratified proxy subset of the training split
    val_size: Any = VAL_SIZE  # count or fraction of train held out for validation (digits: 360 unless given)
    split_seed: int = 0
    eval_split: str = "val"  # "test" only for final reporting
    augment: bool = True
    seed: int = 0
    threads: int | None = None  # None: all cores
    device: str = "auto"
    channels_last: bool = True  # ~2x faster on this CPU too (benchmarks/bench_train.py)
    # a recipe of `mnas train` (mnas/train/recipes.yaml): train on its stack, streaming image folders;
    # None: mnasnet-proxy for imagenet-folder, this module's in-memory loop for the other datasets
    recipe: str | None = None

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise MnasError(f"train evaluator: unknown optimizer {self.optimizer!r} (choose {', '.join(OPTIMIZERS)})")
        if self.eval_split not in ("val", "test"):
            raise MnasError(f"train evaluator: eval_split must be 'val' or 'test', got {self.eval_split!r}")
        if self.schedule not in SCHEDULES:
            raise MnasError(f"train evaluator: unknown schedule {self.schedule!r} (choose {', '.join(SCHEDULES)})")
        if self.steps is not None and self.steps < 0:
            raise MnasError(f"train evaluator: steps must be >= 0, got {self.steps}")
        if self.steps == 0 and self.init_weights is None:
            raise MnasError("train evaluator: steps=0 only makes sense with init_weights=FILE (validate those weights)")
        if self.epochs <= 0 and self.steps is None:
            raise MnasError("train evaluator: give epochs > 0 or steps > 0")
        if self.init_weights is not None and not Path(self.init_weights).is_file():
            raise MnasError(f"train evaluator: init_weights file {self.init_weights} not found (give a state dict "
                            "saved with torch.save, e.g. a NetAdapt step_NNN.pt)")
        if self.batch_size < 1:
            raise MnasError("train evaluator: batch_size must be >= 1")


class TrainEvaluator(Evaluator):
    """Proxy training from scratch (or fine-tuning from ``init_weights``); ``top1``/``loss`` on the held-out
    validation split. With ``init_weights`` the network is trained as given (its weights fix its shape: no
    resolution or small-input change), fed at ``resolution`` (default: its own)."""

    name = "train"
    Config = TrainConfig

    def __init__(self, space: Space | str | None = None, cache: str | Path | None = None, progress: bool = False,
                 **options: Any):
        super().__init__(space, cache)
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise MnasError(f"train evaluator: unknown option(s) {', '.join(unknown)} (allowed: {', '.join(sorted(fields))})")
        self._given = dict(options)  # what the caller set explicitly: overrides a recipe's fields
        if "val_size" not in options:  # the default depends on how many images the dataset has
            options["val_size"] = DEFAULT_VAL_SIZE.get(options.get("dataset", TrainConfig.dataset), VAL_SIZE)
        self.cfg = TrainConfig(**options)
        self.cfg.check()
        if self.cfg.recipe is not None or self.cfg.dataset == "imagenet-folder":
            self._recipe()  # an unknown recipe or a bad field is an error now, not at the first trial
        self.progress = progress
        self._data = None
        self._init_state: dict | None = None
        self._init_sha1 = None
        if self.cfg.init_weights is not None:  # the weights' content, not the file name, changes the result
            import hashlib

            self._init_sha1 = hashlib.sha1(Path(self.cfg.init_weights).read_bytes()).hexdigest()

    def config(self) -> dict:
        d = dataclasses.asdict(self.cfg)
        for k in ("threads", "device", "data_dir", "channels_last"):  # no change to the result beyond float rounding
            d.pop(k)
        if d["schedule"] == "cosine":  # keys of results cached before the option existed stay valid
            d.pop("schedule")
        d.pop("recipe")
        if self.uses_recipe:
            rc = self._recipe().to_dict()
            for k in ("workers", "threads", "device", "data_dir", "channels_last", "save_every_steps", "description"):
                rc.pop(k)
            return {"evaluator": self.name, "recipe": rc}
        if d.pop("init_weights") is not None:
            d["init_weights_sha1"] = self._init_sha1
        return {"evaluator": self.name, **d}

    def init_state(self) -> dict | None:
        """The ``init_weights`` state dict, read once (None: train from a seeded fresh initialisation)."""
        if self.cfg.init_weights is not None and self._init_state is None:
            import torch

            try:
                self._init_state = torch.load(self.cfg.init_weights, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
                raise MnasError(f"train evaluator: cannot read init_weights {self.cfg.init_weights} "
                                f"({type(e).__name__}: {e}); give a file written by torch.save(model.state_dict())") from None
            if not isinstance(self._init_state, dict) or not all(isinstance(v, torch.Tensor) for v in self._init_state.values()):
                raise MnasError(f"train evaluator: init_weights {self.cfg.init_weights} is not a state dict "
                                "(name -> tensor, as torch.save(model.state_dict()) writes)")
        return self._init_state

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

    # -- the `mnas train` stack (a recipe)
    @property
    def uses_recipe(self) -> bool:
        return self.cfg.recipe is not None or self.cfg.dataset == "imagenet-folder"

    # evaluator option -> recipe field, where one was given explicitly
    RECIPE_FIELDS = {"dataset": "dataset", "data_dir": "data_dir", "epochs": "epochs", "steps": "steps",
                     "batch_size": "batch_size", "optimizer": "optimizer", "lr": "lr", "weight_decay": "weight_decay",
                     "label_smoothing": "label_smoothing", "resolution": "resolution", "small_input": "small_input",
                     "train_size": "subset", "seed": "seed", "threads": "threads", "device": "device",
                     "channels_last": "channels_last"}

    def _recipe(self):
        from mnas.train.recipes import recipe

        name = self.cfg.recipe or "mnasnet-proxy"
        over = {self.RECIPE_FIELDS[k]: v for k, v in self._given.items() if k in self.RECIPE_FIELDS}
        over = {k: v for k, v in over.items() if v is not None}
        if "lr" in over:  # an explicit lr is the rate used, at any batch
            over["lr_batch"] = over.get("batch_size", recipe(name).batch_size)
        if "augment" in self._given and self._given["augment"] is False:
            over["augment"] = "none"
        if "eval_split" in self._given or "val_size" in self._given:
            raise MnasError("train evaluator: with a recipe, validation is the dataset's val/ split or the recipe's "
                            "holdout (give holdout=N through the recipe, e.g. a YAML recipe file), not val_size/eval_split")
        return recipe(name, **over)

    def _evaluate_recipe(self, net: Network) -> dict:
        import tempfile

        from mnas.train.loop import train

        rc = self._recipe()
        with tempfile.TemporaryDirectory(prefix="mnas-train-trial-") as tmp:
            s = train(net, rc, tmp, progress=False, log=lambda line: None)
        return {"top1": s["final_top1"], "top5": s["final_top5"], "loss": s["final_loss"], "steps": s["steps"],
                "images_per_s": s["images_per_s"], "device": s["device"], "recipe": self.cfg.recipe or "mnasnet-proxy"}

    def _evaluate(self, net: Network, sample: dict | None) -> dict:
        if self.uses_recipe:
            if self.cfg.init_weights is not None:
                raise MnasError("train evaluator: init_weights does not combine with a recipe (fine-tune in memory)")
            return self._evaluate_recipe(net)
        train, val, ds = self.data()
        init = self.init_state()
        trained = self.trained_network(net) if init is None else net  # inherited weights fix the architecture
        try:
            return train_and_evaluate(trained, train, val, ds, self.cfg, progress=self.progress, init_state=init)
        except RuntimeError as e:
            if init is None or "state_dict" not in str(e):
                raise
            detail = " ".join(line.strip() for line in str(e).splitlines()[1:3])[:300]
            raise MnasError(f"train evaluator: init_weights {self.cfg.init_weights} do not fit {net}: {detail} "
                            "(give the architecture those weights were trained for)") from None


def train_and_evaluate(net: Network, train, val, ds, cfg: TrainConfig, progress: bool = False,
                       init_state: dict | None = None, return_state: bool = False) -> dict:
    """Train ``net`` on ``train`` and measure top-1 and loss on ``val``, with :mod:`mnas.training`'s recipe.

    ``init_state`` (a state dict) starts from those weights instead of a seeded fresh
    initialisation (fine-tuning); ``return_state`` adds the trained weights (on the CPU)
    as ``"state"``. Inputs are fed at ``cfg.resolution`` (default: the network's own);
    one-channel images are repeated when the network takes three. ``cfg.steps=0``
    only validates.
    """
    import numpy as np
    import torch

    from mnas import training
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
        model = build(net, ds.num_classes)
        if init_state is not None:
            model.load_state_dict(init_state, strict=True)
        model = model.to(device)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt)  # type: ignore[call-overload]  # missing from torch's stubs
        mean, std = training.stats(ds.mean, ds.std, device)
        xtr = torch.from_numpy(np.ascontiguousarray(train.x)).to(device)
        ytr = torch.from_numpy(train.y).to(device)
        n = len(ytr)
        bs = min(cfg.batch_size, n)
        per_epoch = n // bs
        steps = cfg.steps if cfg.steps is not None else max(1, int(round(cfg.epochs * per_epoch)))
        lr = cfg.lr if cfg.lr is not None else (0.1 if cfg.optimizer == "sgd" else 0.01) * bs / 128
        opt = training.make_optimizer(model, cfg.optimizer, lr, cfg.weight_decay)
        warm = int(cfg.warmup * steps)
        res = cfg.resolution or net.resolution
        chans = net.in_channels
        model.train()
        bar = None
        if progress and steps:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc="training", unit="step", leave=False)
        order = torch.randperm(n, generator=gen)
        pos, seen, done, loss_sum = 0, 0, 0, 0.0
        for step in range(steps):
            if pos + bs > n:
                order, pos = torch.randperm(n, generator=gen), 0
            idx = order[pos : pos + bs]
            pos += bs
            x = training.to_input(xtr[idx.to(device)], mean, std, res, chans, fmt)
            if cfg.augment:
                x = training.augment(x, gen, ds.hflip, memory_format=fmt)
            training.set_lr(opt, training.lr_at(step, steps, lr, warm, cfg.schedule))
            lv = training.train_step(model, opt, x, ytr[idx.to(device)], cfg.label_smoothing, cuda)
            if not math.isfinite(lv):
                break
            loss_sum += lv
            seen += len(idx)
            done += 1
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{lv:.3f}")
        if bar is not None:
            bar.close()
        train_s = time.perf_counter() - t0
        top1, vloss = training.validate(model, val.x, val.y, mean, std, res, chans, fmt, device, cuda)
        result = {
            "top1": top1,
            "loss": vloss,
            "train_loss": loss_sum / max(1, done + (done < steps)) if steps else math.nan,
            "steps": steps,
            "images": seen,
            "images_per_s": seen / train_s if train_s > 0 else math.nan,
            "cost_s": time.perf_counter() - t0,
            "device": str(device),
        }
        if return_state:
            result["state"] = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        return result
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)
