"""The ``supernet`` accuracy signal: one weight-sharing network trained once, sub-networks scored in seconds.

* :mod:`mnas.accuracy.supernet_net` — the network (:class:`Supernet`,
  ``supernet(x, sample)``), batch-norm recalibration (:func:`calibrate`) and
  :func:`extract` (a sub-network as a standalone module with copied weights);
* :mod:`mnas.accuracy.supernet_train` — training with uniform or sandwich
  sampling, checkpoints that resume exactly, the on-disk cache
  ``~/.cache/mnas/supernets/<hash>.pt`` keyed by space, dataset and config;
* this module — :func:`ensure_trained` (data + training in one call),
  :class:`SubnetScorer` (recalibrate + validation top-1, one sub-network or a
  whole batch of them sharing prefixes) and :class:`SupernetEvaluator`, the
  evaluator interface.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnas.accuracy.base import Evaluator
from mnas.protocols import EvalResult
from mnas.arch import Network
from mnas.errors import MnasError


@dataclass
class EvalData:
    """Normalised tensors for scoring: calibration batches (from train) and a fixed validation set."""

    calib: list  # list of float tensors N×C×H×W
    val_x: object  # float tensor
    val_y: object  # int64 tensor


def load_data(dataset: str, data_dir=None, val_size: int = 2000, seed: int = 0, train_size: int | None = None):
    """``(ArrayDataset, train Split, val Split)`` through :mod:`mnas.data` (decoded once, cached as arrays)."""
    from mnas.data import load_dataset

    ds = load_dataset(dataset, data_dir)
    tr, va = ds.split(val_size, seed=seed, train_size=train_size)
    return ds, tr, va


def ensure_trained(space, dataset: str = "cifar10-folder", data_dir=None, config=None, out=None,
                   progress: bool = True, stop_after: int | None = None) -> Path:
    """Train the supernet of ``space`` on ``dataset`` unless its cache file exists; return the file.

    The default file is ``~/.cache/mnas/supernets/<hash of space, dataset, config>.pt``;
    an interrupted training resumes from ``<file>.ckpt``.
    """
    from mnas.accuracy.supernet_train import SupernetConfig, default_path, train_supernet

    config = config or SupernetConfig()
    ds, tr, _ = load_data(dataset, data_dir, config.val_size, config.seed, config.train_size)
    path = Path(out) if out else default_path(space, dataset, config, ds.num_classes)
    meta = {"space": getattr(space, "name", "?"), "dataset": dataset, "train_images": len(tr),
            "mean": list(ds.mean), "std": list(ds.std)}
    return train_supernet(space, tr.x, tr.y, config, path, num_classes=ds.num_classes, mean=ds.mean, std=ds.std,
                          hflip=ds.hflip, stop_after=stop_after, progress=progress, meta=meta)


# --------------------------------------------------------------------------- scoring sub-networks


class SubnetScorer:
    """Scores sub-networks of a trained supernet: BN recalibration on ``calib`` batches + top-1 on ``val``.

    :meth:`score` does one sub-network exactly as :func:`calibrate` + a forward
    pass would. :meth:`score_many` gives the same numbers for many at once by
    walking them in prefix order: every batch-norm statistic and activation
    depends only on the layers before it, so sub-networks sharing their first
    layers share that work (a stem + stage-1 computed once for hundreds of
    NAS-Bench-Macro networks).
    """

    def __init__(self, supernet, calib: Sequence | None, val_x, val_y, chunk: int = 500):
        self.supernet = supernet.eval()
        # calib None: batch norm normalises the validation images with their own statistics, all of them as one
        # batch (label-free, and the recalibration then costs nothing beyond the validation pass itself)
        self.calib = None if calib is None else list(calib)
        self.val_x, self.val_y = val_x, val_y
        self.chunk = chunk

    # one step (stem, a layer, or the head) applied to the calibration batches, then to val
    def _apply(self, fn, calib_in: list, val_in):
        import torch

        from mnas.accuracy.supernet_net import BNStats

        with torch.no_grad():
            if self.calib is None:  # one batch, normalised by its own statistics
                return [], fn(val_in, None)
            bn = BNStats()
            calib_out = [fn(x, bn) for x in calib_in]
            bn.freeze()
            val_out = torch.cat([fn(val_in[i : i + self.chunk], bn) for i in range(0, len(val_in), self.chunk)])
        return calib_out, val_out

    def _steps(self, arch):
        sn = self.supernet
        steps = [(("stem", arch.stem), lambda x, bn: sn.run_stem(x, arch, bn))]
        for pos, lay in arch.layers:
            steps.append(((pos, lay), lambda x, bn, p=pos, l=lay: sn.run_layer(x, p, l, bn)))
        return steps

    def _finish(self, arch, calib_in, val_in) -> dict:
        import torch
        import torch.nn.functional as F

        _, logits = self._apply(lambda x, bn: self.supernet.run_head(x, arch, bn), calib_in, val_in)
        with torch.no_grad():
            loss = float(F.cross_entropy(logits, self.val_y))
            top1 = float((logits.argmax(1) == self.val_y).float().mean()) * 100.0
        return {"top1": top1, "loss": loss}

    def score(self, arch) -> dict:
        calib_in, val_in = self.calib or [], self.val_x
        for _, fn in self._steps(arch):
            calib_in, val_in = self._apply(fn, calib_in, val_in)
        return self._finish(arch, calib_in, val_in)

    def score_many(self, archs: Sequence, progress: bool = True, callback=None) -> list[dict]:
        """Scores of ``archs`` (in their order); ``callback(i, result)`` as each one finishes.

        An architecture given more than once (NAS-Bench-Macro keys that move identities differently
        name one network: 6,561 keys, 4,277 networks) is scored once; every copy gets its numbers."""
        first: dict = {}
        copies: dict[int, list[int]] = {}
        for i, a in enumerate(archs):
            j = first.setdefault(a.key, i)
            copies.setdefault(j, []).append(i)
        order = sorted(copies, key=lambda i: repr([k for k, _ in self._steps(archs[i])]))
        results: list[dict | None] = [None] * len(archs)
        stack: list[tuple] = []  # (step key, calib acts, val acts)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(archs), desc="scoring", unit="net", dynamic_ncols=True)
        for i in order:
            steps = self._steps(archs[i])
            common = 0
            while common < min(len(stack), len(steps)) and stack[common][0] == steps[common][0]:
                common += 1
            del stack[common:]
            for key, fn in steps[common:]:
                calib_in, val_in = (stack[-1][1], stack[-1][2]) if stack else (self.calib or [], self.val_x)
                stack.append((key, *self._apply(fn, calib_in, val_in)))
            r = self._finish(archs[i], stack[-1][1], stack[-1][2])
            for j in copies[i]:
                results[j] = dict(r)
                if callback is not None:
                    callback(j, results[j])
            if bar is not None:
                bar.update(len(copies[i]))
        if bar is not None:
            bar.close()
        return results


def trained_resolution(record: dict) -> int | None:
    """The input size a supernet finished training at (None: the dataset's own)."""
    cfg = record.get("config", {})
    if cfg.get("low_res") and cfg.get("low_res_fraction", 0.0) >= 1.0:
        return int(cfg["low_res"])
    return None


def make_scorer(supernet, record: dict, dataset: str, data_dir=None, calib_batches: int = 2,
                calib_batch_size: int = 64, val_images: int = 1000, seed: int = 0,
                resolution: int | None = None) -> SubnetScorer:
    """A :class:`SubnetScorer` on the held-out split the supernet was trained without.

    Batch norm is recalibrated per sub-network on ``calib_batches`` × ``calib_batch_size`` fixed
    training images; ``calib_batches=0``: on the ``val_images`` validation images themselves, as one
    batch (no labels are used, the statistics come from 8× more images than 2×64 and the pass costs
    nothing extra; experiments/fidelity_supernet.py measures what each choice does to the ranking).
    ``resolution``: score at this input size (images resized as in training);
    default: the size the supernet was trained at.
    """
    import torch
    import torch.nn.functional as F

    from mnas.accuracy.supernet_train import to_tensor

    cfg = record.get("config", {})
    ds, tr, va = load_data(dataset, data_dir, cfg.get("val_size", 2000), cfg.get("seed", 0), cfg.get("train_size"))
    if ds.num_classes != record.get("num_classes", ds.num_classes):
        raise MnasError(f"dataset {dataset} has {ds.num_classes} classes but the supernet was trained for "
                        f"{record['num_classes']}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(tr), generator=g)[: calib_batches * calib_batch_size].numpy()
    calib = [to_tensor(tr.x[idx[i : i + calib_batch_size]], ds.mean, ds.std)
             for i in range(0, len(idx), calib_batch_size)]
    # a fixed random subset of the held-out split (the split itself is ordered by class)
    vidx = np.sort(torch.randperm(len(va), generator=g)[: min(val_images, len(va))].numpy())
    val_x = to_tensor(va.x[vidx], ds.mean, ds.std)
    val_y = torch.from_numpy(np.asarray(va.y[vidx], dtype=np.int64))
    res = resolution or trained_resolution(record)
    if res and res != ds.resolution:
        def resize(t):
            return F.interpolate(t, size=res, mode="bilinear", antialias=True, align_corners=False)

        calib, val_x = [resize(c) for c in calib], resize(val_x)
    # channels-last: oneDNN's convolutions skip a layout reorder per call, 1.6x faster scoring on this CPU
    # (benchmarks/bench_supernet.py); the numbers agree with the default layout to float rounding
    cl = torch.channels_last
    calib, val_x = [c.contiguous(memory_format=cl) for c in calib], val_x.contiguous(memory_format=cl)
    return SubnetScorer(supernet, calib if calib_batches else None, val_x, val_y)


# --------------------------------------------------------------------------- the evaluator

MODELS = Path(__file__).resolve().parent / "models"
# supernets shipped with mnas, trained and scored by experiments/fidelity_supernet.py: (space, dataset) -> file;
# beside each, <stem>.scores.csv (its scores of every network) and <stem>.fidelity.json (its measured fidelity)
SHIPPED = {("nasbench_macro", "cifar10-folder"): MODELS / "supernet_nasbench_macro.pt"}
RANK_BY = ("loss", "top1")


def fidelity_of(checkpoint: Path) -> dict | None:
    """The fidelity figures measured for the supernet ``checkpoint`` (``<stem>.fidelity.json`` beside it), if any."""
    import json

    f = checkpoint.with_suffix(".fidelity.json")
    if not f.is_file():
        return None
    d = json.loads(f.read_text())
    keep = ("kendall_tau_top1", "kendall_tau_neg_loss", "spearman_rho_top1", "spearman_rho_neg_loss", "keys",
            "baseline_kendall_tau_flops", "baseline_kendall_tau_params", "baseline_kendall_tau_layers",
            "baseline_kendall_tau_predictor100", "benchmark", "train_cpu_minutes", "scoring")
    return {k: d[k] for k in keep if k in d}


def _score_chunk(args):
    """A forked worker's share of :meth:`SupernetEvaluator.evaluate_many` (the scorer is inherited)."""
    import torch

    torch.set_num_threads(1)
    return _WORKER_SCORER.score_many(args, progress=False)


_WORKER_SCORER: SubnetScorer | None = None


class SupernetEvaluator(Evaluator):
    """Scores architectures of ``space`` with a trained supernet (BN recalibration + held-out top-1).

    ``checkpoint``: a file written by ``mnas supernet train`` (default: the cache
    entry of the default :class:`~mnas.accuracy.supernet_train.SupernetConfig`
    for ``space`` and ``dataset``). Validation images are the supernet's own
    held-out split (never seen in training); ``val_images`` of them are used.
    Batch norm is recalibrated per sub-network on those validation images
    themselves (``calib_batches=0``, the default: label-free, no extra pass, and it
    ranks NAS-Bench-Macro better than 2×64 training images), or on
    ``calib_batches`` × ``calib_batch_size`` training images. ``evaluate(net, sample)`` scores the sample's sub-network;
    without a sample, ``net`` itself (:meth:`arch_of`): any network on the
    space's template whose layers fit the supernet's weights, such as NetAdapt's
    shrunk networks.
    """

    name = "supernet"

    def __init__(self, space=None, checkpoint: str | Path | None = None, dataset: str = "cifar10-folder",
                 data_dir: str | Path | None = None, calib_batches: int = 0, calib_batch_size: int = 64,
                 val_images: int = 1000, resolution: int | None = None, seed: int = 0, threads: int | None = None,
                 rank_by: str = "loss", workers: int = 1, cache: str | Path | None = None):
        super().__init__(space, cache)
        if self.space is None:
            raise MnasError("supernet evaluator needs a search space (--space NAME)")
        if calib_batches < 0 or calib_batch_size < 2 or val_images < 1 or (calib_batches == 0 and val_images < 2):
            raise MnasError("supernet evaluator: calib_batches >= 0 (0: recalibrate on the validation images), "
                            "calib_batch_size >= 2 and val_images >= 1 (>= 2 with calib_batches=0) please")
        if rank_by not in RANK_BY:
            raise MnasError(f"supernet evaluator: rank_by must be one of {', '.join(RANK_BY)}, got {rank_by!r}")
        if int(workers) < 1:
            raise MnasError(f"supernet evaluator: workers must be >= 1, got {workers}")
        import torch

        from mnas.accuracy.supernet_train import SupernetConfig, default_path, load_supernet

        if threads:
            torch.set_num_threads(threads)
        self.rank_by, self.workers = rank_by, int(workers)
        shipped = SHIPPED.get((self.space.name, dataset))
        if checkpoint is None and shipped is not None and shipped.is_file():
            checkpoint = shipped  # trained and scored once (experiments/fidelity_supernet.py): no training here
        if checkpoint is None:
            ds, _, _ = load_data(dataset, data_dir)
            checkpoint = default_path(self.space, dataset, SupernetConfig(), ds.num_classes)
            if not checkpoint.exists():
                raise MnasError(f"no trained supernet for space {self.space.name} on {dataset} at {checkpoint}: run "
                                f"`mnas supernet train --space {self.space.name} --dataset {dataset}` or pass checkpoint=PATH")
        self.checkpoint = Path(checkpoint).expanduser()
        self.supernet, self.record = load_supernet(self.space, self.checkpoint)
        self.dataset, self.data_dir = dataset, data_dir
        self.options = dict(calib_batches=calib_batches, calib_batch_size=calib_batch_size, val_images=val_images,
                            seed=seed, resolution=resolution)
        self.scorer = make_scorer(self.supernet, self.record, dataset, data_dir, **self.options)
        self.fidelity = fidelity_of(self.checkpoint)
        self._fidelity_note()
        self._by_net: dict[str, dict] | None = None

    def config(self) -> dict:
        st = self.checkpoint.stat()
        return {"evaluator": self.name, "checkpoint": str(self.checkpoint.resolve()), "size": st.st_size,
                "mtime": int(st.st_mtime), "dataset": self.dataset, "rank_by": self.rank_by, **self.options}

    def _result(self, r: dict, cost_s: float) -> dict:
        """A scorer's ``{top1, loss}`` as this evaluator's result.

        ``rank_by="loss"`` (the default: it ranks NAS-Bench-Macro better than top-1, see the
        fidelity JSON) adds ``score`` = 100·exp(−loss), the geometric-mean probability of the true
        class in percent: monotone in the loss, on accuracy's scale, and what a search maximises
        (``score`` over ``top1``, :mod:`mnas.search.runner`). ``fidelity``: the figures measured for
        these weights, where a ``<stem>.fidelity.json`` lies beside them.
        """
        import math

        out = {**r, "cost_s": cost_s, "val_images": len(self.scorer.val_y), "rank_by": self.rank_by}
        if self.rank_by == "loss":
            out["score"] = 100.0 * math.exp(-r["loss"]) if math.isfinite(r["loss"]) else 0.0
        if self.fidelity is not None:
            out["fidelity"] = self.fidelity
        return out

    def _fidelity_note(self) -> None:
        """The fidelity figures belong to one way of scoring: say so when this evaluator scores otherwise."""
        if self.fidelity is None:
            return
        measured = self.fidelity.get("scoring") or {}
        mine = {k: self.options[k] for k in measured if k in self.options}
        if measured and self.options.get("calib_batches") == 0:
            mine.pop("calib_batch_size", None)
            measured = {k: v for k, v in measured.items() if k != "calib_batch_size"}
        if mine != measured:
            self.fidelity = {**self.fidelity, "note": f"measured with scoring {measured}, not this evaluator's {mine}"}

    def sample_of(self, net: Network) -> dict:
        """The space's sample that decodes to ``net`` (searched once over a small space)."""
        if self._by_net is None:
            if self.space.size > 3000:
                raise MnasError(f"supernet evaluator: give the sample of the network (space {self.space.name} "
                                f"has {self.space.size:.3g} members, too many to search)")
            from mnas.accuracy.supernet_net import space_archs

            self._by_net = {}
            for s in space_archs(self.space):
                self._by_net.setdefault(str(self.space.decode(s).with_resolution(net.resolution)), s)
        s = self._by_net.get(str(net))
        if s is None:
            raise MnasError(f"supernet evaluator: the network is not a member of space {self.space.name}")
        return s

    def arch_of(self, net: Network, sample: dict | None = None):
        """The :class:`SubnetArch` to score: the sample's; else, in a space small enough to search, the sample
        ``net`` decodes from; else (a big space, or a network no sample names, e.g. NetAdapt's) ``net``'s
        blocks cut into the space's stages (:func:`~mnas.accuracy.supernet_net.network_arch`)."""
        from mnas.accuracy.supernet_net import network_arch, subnet_arch

        if sample is not None:
            return subnet_arch(self.space, sample)
        if self.space.size <= 3000:
            try:
                return subnet_arch(self.space, self.sample_of(net))
            except MnasError:
                pass
        return network_arch(self.space, net, self.supernet)

    def _evaluate(self, net: Network, sample: dict | None) -> dict:
        t0 = time.perf_counter()
        arch = self.arch_of(net, sample)
        r = self.scorer.score(arch)
        return self._result(r, time.perf_counter() - t0)

    def _score_many(self, archs: list) -> list[dict]:
        """``scorer.score_many``, split over ``workers`` forked processes in prefix order (same numbers)."""
        global _WORKER_SCORER

        if self.workers == 1 or len(archs) < 2 * self.workers:
            return self.scorer.score_many(archs, progress=len(archs) > 1)
        import multiprocessing as mp

        order = sorted(range(len(archs)), key=lambda i: repr([k for k, _ in self.scorer._steps(archs[i])]))
        cuts = [len(order) * w // self.workers for w in range(self.workers + 1)]
        parts = [[archs[i] for i in order[a:b]] for a, b in zip(cuts, cuts[1:])]
        _WORKER_SCORER = self.scorer
        try:
            with mp.get_context("fork").Pool(self.workers) as pool:
                done = pool.map(_score_chunk, parts)
        finally:
            _WORKER_SCORER = None
        out: list[Any] = [None] * len(archs)
        for (a, b), rs in zip(zip(cuts, cuts[1:]), done):
            for i, r in zip(order[a:b], rs):
                out[i] = r
        return out

    def evaluate_many(self, nets: Sequence[Network | None], samples: Sequence[dict | None] | None = None) -> list[EvalResult]:
        """Like :meth:`evaluate` for each, sharing the work of common prefixes (same numbers)."""
        samples = samples if samples is not None else [None] * len(nets)
        out: list[Any] = [None] * len(nets)
        todo = []
        for i, (n, s) in enumerate(zip(nets, samples)):
            if n is None:
                n = self.space.decode(s)
            hit = self.cache.get(self.cache_key(n, s))
            if hit is not None:
                self.cache_hits += 1
                out[i] = {**hit, "cached": True}
            else:
                todo.append((i, n, s))
        if todo:
            t0 = time.perf_counter()
            results = self._score_many([self.arch_of(n, s) for _, n, s in todo])
            each = (time.perf_counter() - t0) / len(todo)
            for (i, n, s), r in zip(todo, results):
                # cost_s: the batch's time shared equally (prefix sharing makes each cheaper than alone)
                res = {**self._result(r, each), "evaluator": self.name}
                self.cache.put(self.cache_key(n, s), res, evaluator=self.name, arch=str(n))
                self.evaluations += 1
                out[i] = {**res, "cached": False}
        return out
