"""Training recipes as data: ``recipes.yaml`` beside this file, one typed :class:`Recipe` per entry.

``recipe("v3", lr=0.05)`` is the paper's recipe with one field changed; an unknown recipe
or field, or a value of the wrong type, is one :class:`~mnas.errors.MnasError` line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnas.configs import DictConfig
from mnas.errors import MnasError

RECIPES_FILE = Path(__file__).with_name("recipes.yaml")
SCHEDULES = ("exponential", "cosine", "constant")
DATASETS = ("imagenet-folder", "cifar10-folder", "cifar10", "digits", "folder")


@dataclass(frozen=True)
class Recipe(DictConfig):
    """Everything that decides how a network is trained (saved as ``config.yaml`` of each run)."""

    description: str = ""
    dataset: str = "cifar10-folder"  # imagenet-folder / folder: streamed; the others: in-memory arrays
    data_dir: str | None = None
    subset: int | None = None  # a seeded class-balanced subset of the training images
    holdout: int | None = None  # validate on this many training images held out (class-balanced), not on val/
    val_subset: int | None = None  # validate on a class-balanced subset of the validation images
    epochs: float = 1.0
    steps: int | None = None  # optimizer steps in all (overrides epochs)
    batch_size: int = 128  # the global batch: all processes and accumulation steps together
    accum: int = 1  # micro-batches per optimizer step (gradient accumulation)
    lr: float = 0.1
    lr_batch: int = 128  # lr is the rate at this batch, scaled linearly to batch_size
    optimizer: str = "sgd"  # sgd (Nesterov) | rmsprop (TensorFlow-style)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # exponential | cosine | constant
    decay_every_epochs: float = 3.0  # exponential: lr x decay_factor every this many epochs
    decay_factor: float = 0.99
    warmup_epochs: float = 0.0
    dropout: float | None = None  # None: the network's own
    ema_decay: float = 0.0  # 0: off; else validation and best.pt use the moving average
    bn_momentum: float = 0.1  # PyTorch convention (1 - TensorFlow's decay)
    label_smoothing: float = 0.0
    augment: str = "inception"  # inception | pad-crop | none
    min_crop: float = 0.08
    crop_fraction: float = 0.875
    resolution: int | None = None  # None: the network's own (in-memory datasets: the images')
    small_input: Any = 0  # in-memory small images: stride-2 layers set to stride 1 ("auto" or a count)
    seed: int = 0
    workers: int = 2  # DataLoader worker processes per training process
    threads: int | None = None  # CPU threads per process (None: cores / processes)
    device: str = "auto"  # auto | cpu | cuda
    channels_last: bool = True
    bf16: bool = True  # bfloat16 autocast on CUDA
    save_every_steps: int = 0  # 0: a resumable checkpoint at the end of each epoch only

    def check(self) -> "Recipe":
        def bad(msg: str) -> MnasError:
            return MnasError(f"recipe: {msg}")

        if self.dataset not in DATASETS:
            raise bad(f"unknown dataset {self.dataset!r} (choose {', '.join(DATASETS)})")
        if self.optimizer not in ("sgd", "rmsprop"):
            raise bad(f"unknown optimizer {self.optimizer!r} (choose sgd, rmsprop)")
        if self.schedule not in SCHEDULES:
            raise bad(f"unknown schedule {self.schedule!r} (choose {', '.join(SCHEDULES)})")
        if self.augment not in ("inception", "pad-crop", "none"):
            raise bad(f"unknown augment {self.augment!r} (choose inception, pad-crop, none)")
        for name in ("batch_size", "accum", "lr_batch"):
            if getattr(self, name) < 1:
                raise bad(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("subset", "holdout", "val_subset", "steps", "resolution", "threads"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise bad(f"{name} must be >= 1 (or null), got {v}")
        if self.steps is None and not self.epochs > 0:
            raise bad(f"epochs must be > 0, got {self.epochs}")
        if not self.lr > 0:
            raise bad(f"lr must be > 0, got {self.lr}")
        for name in ("ema_decay", "label_smoothing", "bn_momentum"):
            if not 0 <= getattr(self, name) < 1:
                raise bad(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.dropout is not None and not 0 <= self.dropout < 1:
            raise bad(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0 < self.decay_factor <= 1 or not self.decay_every_epochs > 0:
            raise bad("exponential decay needs decay_factor in (0, 1] and decay_every_epochs > 0")
        if self.workers < 0 or self.save_every_steps < 0 or self.warmup_epochs < 0:
            raise bad("workers, save_every_steps and warmup_epochs must be >= 0")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not (self.small_input == "auto" or (isinstance(self.small_input, int) and self.small_input >= 0)):
            raise bad(f"small_input must be 'auto' or a count >= 0, got {self.small_input!r}")
        return self

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / self.lr_batch

    def replace(self, **changes: Any) -> "Recipe":
        return Recipe.from_dict({**self.to_dict(), **changes}, where="recipe").check()


def _table() -> dict[str, dict]:
    from mnas.io import load_yaml_file

    table = load_yaml_file(RECIPES_FILE, "recipes")
    if not isinstance(table, dict):
        raise MnasError(f"{RECIPES_FILE}: expected a mapping of recipe names")
    return table


def names() -> list[str]:
    """The shipped recipes, in file order."""
    return list(_table())


def recipe(name: str, **overrides: Any) -> Recipe:
    """Recipe ``name`` (shipped, or a YAML file of fields) with ``overrides`` applied and checked."""
    table = _table()
    if name in table:
        base = table[name]
    elif Path(name).suffix in (".yaml", ".yml") and Path(name).is_file():
        from mnas.io import load_yaml_file

        base = load_yaml_file(name, "recipe")
    else:
        raise MnasError(f"unknown recipe {name!r} (choose {', '.join(table)}, or give a YAML file of recipe fields)")
    fields = {f.name for f in dataclasses.fields(Recipe)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise MnasError(f"recipe: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(sorted(fields))})")
    return Recipe.from_dict({**base, **overrides}, where=f"recipe {name}").check()
