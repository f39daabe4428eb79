"""Training a supernet once: uniform, sandwich or fair sampling, SGD + cosine, exact resume.

Built on the shared training stack (:mod:`mnas.training`: input tensors, random
crop + flip, the weight-decay split, warm-up + cosine schedule), so a supernet's
batches and optimiser are those of proxy training and NetAdapt fine-tuning; only
what is the supernet's own stays here (sampling sub-networks per step, gradient
clipping, the checkpoint format).

:func:`train_supernet` trains the :class:`~mnas.accuracy.supernet_net.Supernet`
of a space on a dataset and writes ``<cache>/supernets/<hash>.pt``, where the
hash covers the space (its choices and every layer it can produce), the
dataset and the :class:`SupernetConfig`. A checkpoint (model, optimizer,
sampler RNG, data RNG, step) is written every ``checkpoint_every`` steps next to
it (``<hash>.ckpt.pt``); a killed training restarted with the same arguments
continues from there and ends with the same weights as an uninterrupted run.

Every step draws its architecture(s) from a ``random.Random`` and its batch and
augmentation from a ``torch.Generator`` whose states are checkpointed, so the
run depends only on the seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from mnas import training
from mnas.accuracy.supernet_net import Supernet, SubnetArch, subnet_arch
from mnas.errors import MnasError

if TYPE_CHECKING:  # annotations only
    from mnas.space import SearchSpace

SAMPLINGS = ("uniform", "sandwich", "fair")
# the on-disk layout of checkpoints and finished supernets; bumped when it changes
FORMAT = 2
# the training code's version, hashed into the cache key: 2 = on the shared stack of mnas.training
# (its augmentation, parameter groups and schedule), so a file trained by older code is never reused as new
TRAINER = 2


@dataclass(frozen=True)
class SupernetConfig:
    """Everything that changes the trained weights (hashed into the cache key)."""

    steps: int = 2000  # optimizer steps (each: one architecture; largest + smallest + random; or fair: k archs)
    batch: int = 64
    sampling: str = "uniform"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    warmup_steps: int = 50
    val_size: int = 2000  # held out from train (stratified): evaluation images
    train_size: int | None = None  # optional stratified subset of the rest
    low_res: int = 0  # train at this input size for the first ``low_res_fraction`` of steps (0: never)
    low_res_fraction: float = 0.0
    seed: int = 0
    checkpoint_every: int = 100
    # start from the weights of this finished supernet file (same space) instead of random ones: a second
    # cosine cycle (SGDR's warm restart) with a fresh optimizer; the cache key hashes its weights, not its path
    init: str = ""

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLINGS:
            raise MnasError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {self.sampling!r}")
        if self.steps < 1 or self.batch < 2:
            raise MnasError(f"steps must be >= 1 and batch >= 2 (got steps={self.steps}, batch={self.batch})")
        if not 0.0 <= self.low_res_fraction <= 1.0:
            raise MnasError(f"low_res_fraction must be in [0, 1], got {self.low_res_fraction}")

    def hashed(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("checkpoint_every")  # when checkpoints are written does not change the weights
        if d["init"]:
            d["init"] = file_digest(d["init"])
        else:
            d.pop("init")  # configs without a warm start keep the cache keys they had
        return d


def file_digest(path: str | Path) -> str:
    """sha1 (16 hex digits) of a file's bytes: a warm start is named by its weights, wherever it lies."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise MnasError(f"supernet to start from (init) {p} does not exist: train it first or fix the path")
    h = hashlib.sha1()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def cache_root() -> Path:
    return Path(os.environ.get("MNAS_CACHE") or Path.home() / ".cache" / "mnas").expanduser() / "supernets"


def space_fingerprint(space: SearchSpace) -> str:
    """A digest of what a supernet of ``space`` holds: choice names/options and every layer shape."""
    parts = [repr([(c.name, c.options) for c in space.choices()])]
    try:
        parts.append(repr(sorted(map(repr, space.distinct_layers()))))
    except (AttributeError, NotImplementedError):
        pass
    parts.append(repr(getattr(space, "head", None)))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:16]


def run_hash(space: SearchSpace, dataset: str, config: SupernetConfig, num_classes: int) -> str:
    text = json.dumps({"space": space_fingerprint(space), "dataset": dataset, "classes": num_classes,
                       "config": config.hashed(), "trainer": TRAINER}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def default_path(space: SearchSpace, dataset: str, config: SupernetConfig, num_classes: int) -> Path:
    return cache_root() / f"{run_hash(space, dataset, config, num_classes)}.pt"


# --------------------------------------------------------------------------- data on tensors


def to_tensor(x: np.ndarray, mean, std, channels: int = 3) -> torch.Tensor:
    """uint8 ``N×H×W×C`` -> normalised float ``N×C×H×W`` at its own size (:func:`mnas.training.to_input`)."""
    m, s = training.stats(mean, std)
    return training.to_input(torch.from_numpy(np.ascontiguousarray(x)), m, s, x.shape[1], channels)


def sample_archs(space: SearchSpace, rng: random.Random, sampling: str, extremes: tuple[SubnetArch, SubnetArch]) -> list[SubnetArch]:
    """The architectures of one step: one uniform sample, or largest + smallest + one uniform (sandwich)."""
    if sampling == "fair":
        return [subnet_arch(space, s) for s in fair_samples(space, rng)]
    rand = subnet_arch(space, space.sample(rng))
    if sampling == "uniform":
        return [rand]
    return [extremes[0], extremes[1], rand]


def fair_samples(space: SearchSpace, rng: random.Random) -> list[dict]:
    """FairNAS's strict fairness: k samples (k = most options of any choice) in which every
    option of every choice appears once (choices with fewer options are topped up at random)."""
    choices = space.choices()
    k = max(len(c.options) for c in choices)
    cols = {}
    for c in choices:
        opts = list(c.options)
        rng.shuffle(opts)
        cols[c.name] = opts + [rng.choice(c.options) for _ in range(k - len(opts))]
    return [{name: col[i] for name, col in cols.items()} for i in range(k)]


def extremes(space: SearchSpace) -> tuple[SubnetArch, SubnetArch]:
    """(largest, smallest) sub-networks by multiply-adds, among each choice's first/last options."""
    from mnas.counting import count

    cands = []
    if hasattr(space, "extreme"):
        cands = [space.extreme("max"), space.extreme("min")]
    rng = random.Random(12345)
    cands += [space.sample(rng) for _ in range(200)]
    scored = sorted(cands, key=lambda s: count(space.decode(s), 10).madds)
    return subnet_arch(space, scored[-1]), subnet_arch(space, scored[0])


# --------------------------------------------------------------------------- training


@dataclass
class TrainState:
    step: int = 0
    losses: list = field(default_factory=list)
    seconds: float = 0.0


def _lr_at(step: int, cfg: SupernetConfig) -> float:
    return training.lr_at(step, cfg.steps, cfg.lr, cfg.warmup_steps)


def make_optimizer(supernet: Supernet, cfg: SupernetConfig) -> torch.optim.Optimizer:
    """The shared stack's SGD (Nesterov) over its one weight-decay split (:mod:`mnas.training`)."""
    return training.make_optimizer(supernet, "sgd", cfg.lr, cfg.weight_decay, cfg.momentum)


def train_supernet(
    space,
    images: np.ndarray,
    labels: np.ndarray,
    config: SupernetConfig,
    out: str | Path,
    *,
    num_classes: int,
    mean: tuple,
    std: tuple,
    hflip: bool = True,
    stop_after: int | None = None,
    progress: bool = True,
    meta: dict | None = None,
) -> Path:
    """Train (or resume) the supernet of ``space`` on uint8 ``N×H×W×C`` images; write it to ``out``.

    ``out`` is the final file; ``<out>.ckpt`` holds the resumable checkpoint.
    ``stop_after`` ends the process early at that step (after checkpointing it),
    as a kill would: call again to continue. Returns ``out``.
    """
    out = Path(out)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    ckpt = out.with_suffix(".ckpt")
    torch.manual_seed(config.seed)
    supernet = Supernet.from_space(space, num_classes)
    opt = make_optimizer(supernet, config)
    rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    state = TrainState()
    fingerprint = space_fingerprint(space)
    if config.init and not ckpt.exists():  # a warm restart: the parent's weights, a fresh optimizer
        parent, _ = load_supernet(space, config.init)
        supernet.load_state_dict(parent.state_dict())
    if ckpt.exists():
        saved = read_checkpoint(ckpt, what="training checkpoint")
        if saved.get("space_fingerprint") not in (None, fingerprint):
            raise MnasError(f"training checkpoint {ckpt} is of another search space than "
                            f"{getattr(space, 'name', '?')}: delete it to train anew, or pass another output file")
        for k in ("model", "optimizer", "rng", "gen", "state"):
            if k not in saved:
                raise MnasError(f"training checkpoint {ckpt} lacks {k!r} (written by an older mnas?): delete it to train anew")
        try:
            supernet.load_state_dict(saved["model"])
            opt.load_state_dict(saved["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            raise MnasError(f"training checkpoint {ckpt} does not fit the space {getattr(space, 'name', '?')} "
                            f"({str(e).splitlines()[0][:120]}): delete it to train anew") from None
        rng.setstate(_as_rng_state(saved["rng"]))
        gen.set_state(saved["gen"])
        st = saved["state"]
        state = TrainState(step=int(st["step"]), losses=list(st["losses"]), seconds=float(st["seconds"]))
    ext = extremes(space) if config.sampling == "sandwich" else None
    n = len(labels)
    train_y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    low_until = int(config.low_res_fraction * config.steps) if config.low_res else 0
    m_t, s_t = training.stats(mean, std)
    size, to_input = images.shape[1], training.to_input
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, initial=state.step, desc="supernet", unit="step", dynamic_ncols=True)
    supernet.train()
    t0 = time.perf_counter()
    while state.step < config.steps:
        idx = torch.randint(0, n, (config.batch,), generator=gen)
        xb = training.augment(to_input(torch.from_numpy(images[idx.numpy()]), m_t, s_t, size, 3), gen, hflip)
        yb = train_y[idx]
        if state.step < low_until:
            xb = F.interpolate(xb, size=config.low_res, mode="bilinear", antialias=True, align_corners=False)
        training.set_lr(opt, _lr_at(state.step, config))
        opt.zero_grad(set_to_none=True)
        total = 0.0
        for arch in sample_archs(space, rng, config.sampling, ext):
            loss = F.cross_entropy(supernet.run(xb, arch), yb, label_smoothing=config.label_smoothing)
            if not math.isfinite(loss.item()):
                _diverged(f"loss is {loss.item()}", state, config, ckpt, bar)
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(supernet.parameters(), 5.0)
        opt.step()
        state.step += 1
        state.losses.append(total)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{sum(state.losses[-20:]) / len(state.losses[-20:]):.3f}")
        last = state.step == config.steps
        if state.step % config.checkpoint_every == 0 or last or state.step == stop_after:
            state.seconds += time.perf_counter() - t0
            t0 = time.perf_counter()
            if not all(bool(torch.isfinite(p).all()) for p in supernet.parameters()):
                _diverged("the weights are no longer finite", state, config, ckpt, bar)  # never saved
            _atomic_save({"format": FORMAT, "space_fingerprint": fingerprint, "model": supernet.state_dict(),
                          "optimizer": opt.state_dict(), "rng": rng.getstate(), "gen": gen.get_state(),
                          "state": dataclasses.asdict(state)}, ckpt)
        if state.step == stop_after and not last:
            if bar is not None:
                bar.close()
            return ckpt
    if bar is not None:
        bar.close()
    _atomic_save({"format": FORMAT, "space_fingerprint": fingerprint, "model": supernet.state_dict(),
                  "config": dataclasses.asdict(config), "num_classes": num_classes,
                  "losses": state.losses, "train_seconds": state.seconds, "meta": meta or {}}, out)
    ckpt.unlink(missing_ok=True)
    return out


def _diverged(what: str, state: TrainState, config: SupernetConfig, ckpt: Path, bar) -> None:
    """Stop a diverged training with one line; the last checkpoint on disk (finite weights) stays."""
    if bar is not None:
        bar.close()
    last_good = f"the last good checkpoint {ckpt} (step {_ckpt_step(ckpt)}) is kept" if ckpt.exists() \
        else "no checkpoint was written yet"
    raise MnasError(f"supernet training diverged: {what} at step {state.step + 1} (lr "
                    f"{_lr_at(state.step, config):.3g}); {last_good}. Lower --lr (now {config.lr}) and train again")


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _as_rng_state(st):
    """``random.Random.getstate()`` back from a checkpoint (lists may come back where tuples were)."""
    return (int(st[0]), tuple(int(v) for v in st[1]), st[2] if len(st) > 2 else None)


def _ckpt_step(path: Path) -> int | str:
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu")["state"]["step"])
    except Exception:  # only for a message
        return "?"


def file_format(path: str | Path) -> str:
    """What ``path`` holds, from its first bytes: ``torch`` (``torch.save``'s zip), ``legacy torch`` (a pickle,
    as torch < 1.6 wrote), or a description of another format (``a zip archive``, ``text``, ``gzip data``, ...)."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return "a damaged zip archive (a torch file cut short?)"
        return "torch" if any(n.endswith("data.pkl") for n in names) else "a zip archive of other files"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle's PROTO opcode
        return "legacy torch"
    for magic, name in ((b"\x1f\x8b", "gzip data"), (b"\x89HDF", "HDF5 data (Keras?)"), (b"\x93NUMPY", "a NumPy array"),
                        (b"SQLite format 3", "an SQLite database"), (b"\x89PNG", "a PNG image")):
        if head.startswith(magic):
            return name
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "unknown binary data"
    return "text" if all(c.isprintable() or c in "\t\r\n" for c in text) else "unknown binary data"


def read_checkpoint(path: str | Path, what: str = "supernet file") -> dict:
    """``torch.load(path, weights_only=True)`` of a supernet file or checkpoint, bad files as one MnasError.

    Tensors, numbers, strings, lists, tuples and dicts only: nothing of an arbitrary class is unpickled.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise MnasError(f"{what} {path} does not exist (train one with `mnas supernet train`)")
    if path.stat().st_size == 0:
        raise MnasError(f"{what} {path} is empty (an interrupted copy?): delete it and train or copy it again")
    fmt = file_format(path)
    if fmt not in ("torch", "legacy torch") and not fmt.startswith("a damaged zip"):  # a cut torch file: below
        raise MnasError(f"{what} {path} is not a torch file (it holds {fmt}); give a supernet file written by "
                        "`mnas supernet train`")
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        msg = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise MnasError(f"{what} {path} is in an older format that stores Python objects (written by an "
                            f"older mnas): train it again with `mnas supernet train`") from None
        raise MnasError(f"{what} {path} is truncated or not a torch file ({msg}): delete it and train "
                        f"again") from None
    except Exception as e:  # an unpickling error of any kind: not a file we wrote
        if "Weights only load failed" in str(e) or "Unsupported global" in str(e):
            raise MnasError(f"{what} {path} is in an older format that stores Python objects (written by an "
                            f"older mnas): train it again with `mnas supernet train`") from None
        raise MnasError(f"{what} {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); "
                        f"delete it and train again") from None
    if not isinstance(saved, dict):
        raise MnasError(f"{what} {path} holds a {type(saved).__name__}, not a supernet record: train it again")
    return saved


def load_supernet(space: SearchSpace, path: str | Path) -> tuple[Supernet, dict]:
    """A trained supernet of ``space`` from ``path`` (written by :func:`train_supernet`) and its record."""
    path = Path(path).expanduser()
    saved = read_checkpoint(path)
    if "model" not in saved or "num_classes" not in saved:
        raise MnasError(f"{path} is not a finished supernet (an unfinished checkpoint? finish `mnas supernet train`)")
    if saved.get("format", 1) > FORMAT:
        raise MnasError(f"{path} has format {saved['format']}, newer than this mnas reads ({FORMAT}): upgrade mnas")
    fp = saved.get("space_fingerprint")
    if fp is not None and fp != space_fingerprint(space):
        raise MnasError(f"{path} was trained on another search space than {getattr(space, 'name', '?')}: "
                        f"pass the supernet of this space, or train one with `mnas supernet train --space "
                        f"{getattr(space, 'name', '?')}`")
    supernet = Supernet.from_space(space, saved["num_classes"])
    try:
        supernet.load_state_dict(saved["model"])
    except RuntimeError as e:
        raise MnasError(f"{path} does not fit the space {getattr(space, 'name', '?')} "
                        f"(trained on another space?): {str(e).splitlines()[0]}") from None
    return supernet, saved
