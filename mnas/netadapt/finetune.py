"""Short fine-tuning of inherited weights, and the backends that run proposals in parallel.

One *job* is a plain dict (picklable, so it travels to a process pool or a Ray
task): an architecture's text form, optional starting weights, a data spec and a
training spec. :func:`run_job` is a call of the ``train`` evaluator's training
function (:func:`mnas.accuracy.train.train_and_evaluate`) with those initial
weights: the same recipe as proxy training (:mod:`mnas.training`: random crop
with padding + horizontal flips, no weight decay on batch-norm parameters and
biases, SGD with Nesterov momentum, label smoothing), trained for ``steps``
steps on the proxy training set and measured on the held-out validation split
(never the test split). Everything is seeded: the same job gives the same
result in any process.

Images are fed at ``image_size`` (32×32 by default, a proxy for the deployment
resolution): the network is fully convolutional with global pooling, so its
latency is still predicted at the architecture's own resolution.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Iterable, Iterator

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
    schedule: str = "cosine"  # cosine (decays to 0) or constant (mnas.training.lr_at)
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    seed: int = 0
    augment: bool = True  # mnas.training.augment: random crop (1/8 padding) + flips where the dataset allows


class Task:
    """The seeded train/validation splits of one :class:`DataSpec` (uint8 NHWC, as :mod:`mnas.data` holds them)."""

    def __init__(self, spec: DataSpec):
        from mnas.data import load_dataset

        ds = load_dataset(spec.dataset, spec.data_dir, progress=False)
        val_size = min(spec.val_size, len(ds.train) // 5) if spec.val_size else len(ds.train) // 10
        self.val_size = val_size
        self.train, self.val = ds.split(val_size, seed=spec.seed, train_size=spec.train_size)
        self.dataset = ds
        self.num_classes = ds.num_classes
        self.size = spec.image_size


_TASKS: dict[DataSpec, Task] = {}


def load_task(spec: DataSpec) -> Task:
    """The task for ``spec``, loaded once per process."""
    if spec not in _TASKS:
        _TASKS[spec] = Task(spec)
    return _TASKS[spec]


def num_classes(spec: DataSpec) -> int:
    return load_task(spec).num_classes


def train_config(data: DataSpec, spec: TrainSpec, threads: int | None = None, val_size: int | None = None):
    """The ``train`` evaluator's :class:`~mnas.accuracy.train.TrainConfig` of one fine-tuning job (CPU, no warm-up,
    no small-input change: inherited weights fix the architecture)."""
    from mnas.accuracy.train import TrainConfig

    return TrainConfig(dataset=data.dataset, data_dir=data.data_dir, steps=spec.steps, batch_size=spec.batch_size,
                       optimizer="sgd", lr=spec.lr, weight_decay=spec.weight_decay,
                       label_smoothing=spec.label_smoothing, warmup=0.0, schedule=spec.schedule,
                       resolution=data.image_size, small_input=0, train_size=data.train_size,
                       val_size=val_size if val_size is not None else data.val_size, split_seed=data.seed,
                       augment=spec.augment, seed=spec.seed, threads=threads, device="cpu")


def make_job(arch: str, data: DataSpec, train_spec: TrainSpec, state: dict | None = None, key: str = "") -> dict:
    return {"key": key, "arch": arch, "data": asdict(data), "train": asdict(train_spec), "state": state}


def run_job(job: dict) -> dict:
    """Build ``job["arch"]`` from ``job["state"]`` (or a seeded fresh init), train, validate; returns
    ``key``, ``top1``, ``loss`` (validation), ``train_loss``, ``state`` (the trained weights) and ``cost_s``."""
    import torch

    from mnas.accuracy.train import train_and_evaluate
    from mnas.arch import parse_network

    spec = TrainSpec(**job["train"])
    data = DataSpec(**job["data"])
    task = load_task(data)
    cfg = train_config(data, spec, threads=torch.get_num_threads(), val_size=task.val_size)
    r = train_and_evaluate(parse_network(job["arch"]), task.train, task.val, task.dataset, cfg,
                           init_state=job.get("state"), return_state=True)
    return {"key": job["key"], "top1": r["top1"], "loss": r["loss"], "train_loss": r["train_loss"],
            "state": r["state"], "cost_s": r["cost_s"]}


# --------------------------------------------------------------------------- backends


def _init_worker(threads: int) -> None:
    import signal

    import torch

    # Ctrl-C reaches the whole process group: the parent handles it (one line, pool shut down);
    # workers ignore it instead of printing a traceback each (issue 15)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
