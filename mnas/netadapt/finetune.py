"""Short fine-tuning of inherited weights, and the backends that run proposals in parallel.

One *job* is a plain dict (picklable, so it travels to a process pool or a Ray
task): an architecture's text form, optional starting weights, a data spec and a
training spec. :func:`run_job` builds the model, trains it for ``steps`` SGD
steps on the proxy training set and measures top-1 on the held-out validation
split (never the test split). Everything is seeded: the same job gives the same
result in any process.

Images are fed at ``image_size`` (32×32 by default, a proxy for the deployment
resolution): the network is fully convolutional with global pooling, so its
latency is still predicted at the architecture's own resolution.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

import numpy as np

from mnas.errors import MnasError


@dataclass(frozen=True)
class DataSpec:
    """Which data, at what size, and the seeded train/validation split (see :meth:`ArrayDataset.split`)."""

    dataset: str = "digits"
    data_dir: str | None = None
    image_size: int = 32
    val_size: int = 1000
    train_size: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class TrainSpec:
    steps: int
    batch_size: int = 64
    lr: float = 0.05
    schedule: str = "cosine"  # cosine (decays to 0) or constant
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    seed: int = 0


class Task:
    """Train and validation tensors of one :class:`DataSpec` (uint8 NHWC kept; batches normalised on the fly)."""

    def __init__(self, spec: DataSpec):
        import torch

        from mnas.data import load_dataset

        ds = load_dataset(spec.dataset, spec.data_dir, progress=False)
        val_size = min(spec.val_size, len(ds.train) // 5) if spec.val_size else len(ds.train) // 10
        train, val = ds.split(val_size, seed=spec.seed, train_size=spec.train_size)
        self.num_classes = ds.num_classes
        self.hflip = ds.hflip
        self.size = spec.image_size
        self.mean = torch.tensor(ds.mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(ds.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.x_train = torch.from_numpy(np.ascontiguousarray(train.x))
        self.y_train = torch.from_numpy(train.y)
        self.x_val = torch.from_numpy(np.ascontiguousarray(val.x))
        self.y_val = torch.from_numpy(val.y)

    def batch(self, x):
        """uint8 NHWC -> normalised float NCHW at ``size``, grey images repeated to 3 channels."""
        import torch.nn.functional as F

        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x.contiguous()


_TASKS: dict[DataSpec, Task] = {}


def load_task(spec: DataSpec) -> Task:
    """The task for ``spec``, loaded once per process."""
    if spec not in _TASKS:
        _TASKS[spec] = Task(spec)
    return _TASKS[spec]


def num_classes(spec: DataSpec) -> int:
    return load_task(spec).num_classes


def train(model, task: Task, spec: TrainSpec) -> float:
    """``spec.steps`` steps of SGD (momentum 0.9, Nesterov); returns the mean loss of the last 10 % of steps."""
    import torch
    import torch.nn.functional as F

    if spec.steps <= 0:
        return math.nan
    g = torch.Generator().manual_seed(spec.seed)
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=spec.lr, momentum=0.9, nesterov=True)
    n = len(task.y_train)
    model.train()
    tail, losses = max(1, spec.steps // 10), []
    for step in range(spec.steps):
        if spec.schedule == "cosine":
            for group in opt.param_groups:
                group["lr"] = 0.5 * spec.lr * (1 + math.cos(math.pi * step / spec.steps))
        idx = torch.randint(0, n, (spec.batch_size,), generator=g)
        x = task.batch(task.x_train[idx])
        if task.hflip:
            flip = torch.rand(len(idx), generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        loss = F.cross_entropy(model(x), task.y_train[idx], label_smoothing=spec.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= spec.steps - tail:
            losses.append(float(loss.detach()))
    return float(np.mean(losses))


def evaluate(model, task: Task, batch_size: int = 500) -> tuple[float, float]:
    """(top-1 in percent, mean cross-entropy) on the validation split."""
    import torch
    import torch.nn.functional as F

    model.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(task.y_val), batch_size):
            x, y = task.batch(task.x_val[i:i + batch_size]), task.y_val[i:i + batch_size]
            out = model(x)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
    n = len(task.y_val)
    return 100.0 * correct / n, loss / n


def make_job(arch: str, data: DataSpec, train_spec: TrainSpec, state: dict | None = None, key: str = "") -> dict:
    return {"key": key, "arch": arch, "data": asdict(data), "train": asdict(train_spec), "state": state}


def run_job(job: dict) -> dict:
    """Build ``job["arch"]``, load ``job["state"]`` (or a seeded fresh init), train, validate."""
    import torch

    from mnas.arch import parse_network
    from mnas.model import build

    t0 = time.perf_counter()
    spec = TrainSpec(**job["train"])
    task = load_task(DataSpec(**job["data"]))
    torch.manual_seed(spec.seed)
    model = build(parse_network(job["arch"]), task.num_classes)
    if job.get("state") is not None:
        model.load_state_dict(job["state"], strict=True)
    loss = train(model, task, spec)
    top1, val_loss = evaluate(model, task)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return {"key": job["key"], "top1": top1, "loss": val_loss, "train_loss": loss, "state": state,
            "cost_s": time.perf_counter() - t0}


# --------------------------------------------------------------------------- backends


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


class LocalBackend:
    """Jobs in this process (``workers=1``) or a pool of ``workers`` spawned processes."""

    name = "local"

    def __init__(self, workers: int = 1, threads: int | None = None):
        if workers < 1:
            raise MnasError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads = threads or max(1, (os.cpu_count() or 1) // workers)
        self._pool: ProcessPoolExecutor | None = None

    def map(self, jobs: Iterable[dict]) -> Iterator[dict]:
        """Results as they finish (any order)."""
        jobs = list(jobs)
        if self.workers == 1 or len(jobs) <= 1:
            for job in jobs:
                yield run_job(job)
            return
        if self._pool is None:
            import multiprocessing as mp

            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker, initargs=(self.threads,))
        pending = {self._pool.submit(run_job, job) for job in jobs}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        finally:
            for f in pending:
                f.cancel()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayBackend:
    """One Ray task per job; uses the running Ray runtime or starts a local one with ``workers`` CPUs."""

    name = "ray"

    def __init__(self, workers: int | None = None, threads: int = 1):
        try:
            import ray
        except ImportError:  # pragma: no cover - ray is a dependency
            raise MnasError("--backend ray needs the ray package (pip install 'ray[default]')") from None
        self.ray = ray
        if not ray.is_initialized():
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        self._remote = ray.remote(num_cpus=1)(_ray_job)
        self.threads = threads

    def map(self, jobs: Iterable[dict]) -> Iterator[dict]:
        pending = [self._remote.remote(job, self.threads) for job in jobs]
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            for ref in done:
                yield self.ray.get(ref)

    def close(self) -> None:
        pass


def _ray_job(job: dict, threads: int) -> dict:
    _init_worker(threads)
    return run_job(job)


def make_backend(name: str, workers: int = 1):
    if name == "local":
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers)
    raise MnasError(f"unknown backend {name!r} (choose local or ray)")
