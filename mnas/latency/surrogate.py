"""Devices that are models rather than op tables: Accel-NASBench's measured accelerators, and ``madds``.

``get_predictor("zcu102")`` (or ``vck190``, ``a100``, ``rtx3090``, ``tpuv2``, ``tpuv3``) returns an
:class:`AnbDevicePredictor`: a surrogate of the benchmark's measurements, fitted and
cross-validated by ``experiments/fit_anb.py`` and shipped as JSON in ``mnas/latency/models/``
(an additive per-block table: ``base + sum over the 7 blocks of cost[block][(e, k, l, se)]``; for
TPUv3, where that misses interactions, plus LightGBM on the table's residuals).
ZCU102 and VCK190 are the FPGAs' measured latencies in ms; the GPUs' and TPUs' measured
throughputs (images/s, at the benchmark's batch size) become **ms per image = 1000 / throughput**,
so that smaller is better everywhere. They price networks of the ``anb`` space only; any other
network is one error line.

``get_predictor("madds")`` returns :class:`MaddsPredictor`: the value is millions of multiply-adds
(:func:`mnas.counting.count`), for any network, so a search can target FLOPs as EfficientNet's did
(``--device madds --target-ms 400`` reads "400 M multiply-adds").

Both have the interface of :class:`mnas.latency.predictor.Predictor` that search, NetAdapt and
plots use: ``device``, ``source``, ``predict``, ``predict_many``, ``missing``, ``op_breakdown``,
``compile_space`` (a vectorised ``encode``/``predict_indices`` path for a space).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mnas.errors import MnasError

MODELS = Path(__file__).resolve().parent / "models"

ANB_DEVICES: dict[str, str] = {
    "zcu102": "Xilinx ZCU102 FPGA (Vitis AI DPU), measured latency, ms",
    "vck190": "Xilinx VCK190 FPGA (Vitis AI DPU), measured latency, ms",
    "a100": "NVIDIA A100 GPU, ms per image = 1000 / measured throughput",
    "rtx3090": "NVIDIA RTX 3090 GPU, ms per image = 1000 / measured throughput",
    "tpuv2": "Google TPUv2, ms per image = 1000 / measured throughput",
    "tpuv3": "Google TPUv3, ms per image = 1000 / measured throughput",
}
KIND_ANB = "surrogate of Accel-NASBench measurements"
KIND_MADDS = "analytic: millions of multiply-adds"


class _NoTable:
    """Stands in for a lookup table's header where code reads ``predictor.table.correction``/``meta``."""

    correction = (1.0, 0.0)

    def __init__(self, meta: dict):
        self.meta = meta
        self.entries: dict = {}
        self.path = None

    def __len__(self) -> int:
        return 0


class AnbDevicePredictor:
    """ms of a network of the ``anb`` space on one of Accel-NASBench's accelerators (a fitted surrogate)."""

    kind = KIND_ANB

    def __init__(self, device: str, model_path: str | Path | None = None, num_classes: int = 1000):
        from mnas.anb import Surrogate

        if num_classes != 1000:
            raise MnasError(f"device {device}: Accel-NASBench measured 1000-class networks only, got num_classes={num_classes}")
        self.device = device
        self.model = Surrogate.load(model_path or MODELS / f"anb_{device}.json")
        self.source = str(self.model.path)
        self.description = ANB_DEVICES.get(device, device)
        cv = self.model.report.get("cv_shipped", {})
        self.table = _NoTable({"engine": "Accel-NASBench measurement", "cpu": self.description, "threads": None,
                               "cv": cv, "model": self.model.name})
        self.modelled_ops = 0
        self.num_classes = num_classes

    def __repr__(self) -> str:
        return f"AnbDevicePredictor(device={self.device!r}, model={self.model.name!r})"

    def _choices(self, net):
        from mnas.anb import choices_of

        try:
            return choices_of(net)
        except MnasError as e:
            raise MnasError(f"device {self.device} is a {KIND_ANB} and prices networks of the anb space only (--space anb): {e}") from None

    def missing(self, net) -> list[str]:
        self._choices(net)
        return []

    def predict(self, net) -> float:
        return float(self.model.predict(self._choices(net)[None])[0])

    def predict_many(self, nets: Iterable) -> np.ndarray:
        nets = list(nets)
        if not nets:
            return np.zeros(0)
        return self.model.predict(np.stack([self._choices(n) for n in nets]))

    def predict_choices(self, choices: np.ndarray) -> np.ndarray:
        return self.model.predict(choices)

    def op_sum(self, net) -> float:
        return self.predict(net)

    def op_breakdown(self, net) -> list[tuple[str, float]]:
        return self.model.block_contributions(self._choices(net))

    def compile_space(self, space, probes: int = 8, check: int = 200, seed: int = 0) -> "AnbSpacePredictor":
        return AnbSpacePredictor(self, space, check=check, seed=seed)


class AnbSpacePredictor:
    """The vectorised path for the ``anb`` space: index matrix -> (n, 7, 4) choices -> one batched prediction."""

    def __init__(self, pred: AnbDevicePredictor, space, check: int = 200, seed: int = 0):
        import random

        from mnas.anb import FIELDS, choices_of

        if getattr(space, "name", "") != "anb":
            raise MnasError(f"device {pred.device} prices the anb space only, not {getattr(space, 'name', space)!r}")
        self.pred, self.space = pred, space
        self.choices = list(space.choices())
        self.names = [c.name for c in self.choices]
        field_of = {"expand": 0, "kernel": 1, "layers": 2, "depth": 2, "se": 3}
        # per choice: (block, field, value of each option); unknown names fall back to decoding
        self._slots = []
        stages = [st.name for st in space.stages]
        for c in self.choices:
            stage, _, f = c.name.partition(".")
            if stage not in stages or f not in field_of:
                raise MnasError(f"anb space choice {c.name!r} is not one of {', '.join(FIELDS)} per block")
            self._slots.append((stages.index(stage), field_of[f], np.array([int(o) for o in c.options])))
        self._base = np.array([[1, 3, 1, 0]] * len(stages), dtype=np.int64)
        rng = random.Random(seed)
        samples = [space.sample(rng) for _ in range(check)]
        if samples:
            fast = self.predict_indices(self.encode(samples))
            slow = pred.model.predict(np.stack([choices_of(s, space) for s in samples]))
            if not np.allclose(fast, slow, rtol=1e-12, atol=1e-12):
                raise MnasError(f"vectorised {pred.device} path disagrees with the per-network path on the anb space")

    def encode(self, samples: Sequence[dict]) -> np.ndarray:
        lookup = [{o: i for i, o in enumerate(c.options)} for c in self.choices]
        return np.array([[lookup[j][s[n]] for j, n in enumerate(self.names)] for s in samples], dtype=np.int64)

    def choices_of_indices(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64)
        out = np.broadcast_to(self._base, (len(idx),) + self._base.shape).copy()
        for j, (b, f, values) in enumerate(self._slots):
            out[:, b, f] = values[idx[:, j]]
        return out

    def predict_indices(self, idx: np.ndarray) -> np.ndarray:
        return self.pred.model.predict(self.choices_of_indices(idx))


class MaddsPredictor:
    """``predict(net)`` = millions of multiply-adds (convolutions and fully-connected layers), any network."""

    kind = KIND_MADDS
    device = "madds"

    def __init__(self, num_classes: int = 1000):
        self.num_classes = num_classes
        self.source = "mnas.counting.count (analytic)"
        self.description = "millions of multiply-adds, counted from the architecture"
        self.table = _NoTable({"engine": "analytic", "cpu": self.description, "threads": None})
        self.modelled_ops = 0

    def __repr__(self) -> str:
        return "MaddsPredictor()"

    def missing(self, net) -> list[str]:
        return []

    def predict(self, net) -> float:
        from mnas.counting import count

        return count(net, self.num_classes).madds / 1e6

    def predict_many(self, nets: Iterable) -> np.ndarray:
        return np.array([self.predict(n) for n in nets], dtype=float)

    def op_sum(self, net) -> float:
        return self.predict(net)

    def op_breakdown(self, net) -> list[tuple[str, float]]:
        from mnas.counting import layer_counts
        from mnas.latency.keys import layer_key

        rows = [(layer_key(la), layer_counts(la)[1] / 1e6) for la in net.layers()]
        head = self.predict(net) - sum(v for _, v in rows)
        return rows + [("head (conv, classifier)", head)]

    def compile_space(self, space, probes: int = 8, check: int = 200, seed: int = 0) -> "MaddsSpacePredictor":
        return MaddsSpacePredictor(self, space)


class MaddsSpacePredictor:
    """Index matrix -> multiply-adds, decoding each distinct row once (cached: searches revisit networks)."""

    def __init__(self, pred: MaddsPredictor, space):
        self.pred, self.space = pred, space
        self.choices = list(space.choices())
        self.names = [c.name for c in self.choices]
        self._memo: dict[bytes, float] = {}

    def encode(self, samples: Sequence[dict]) -> np.ndarray:
        lookup = [{o: i for i, o in enumerate(c.options)} for c in self.choices]
        return np.array([[lookup[j][s[n]] for j, n in enumerate(self.names)] for s in samples], dtype=np.int64)

    def predict_indices(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty(len(idx))
        for i, row in enumerate(np.asarray(idx, dtype=np.int64)):
            k = row.tobytes()
            if k not in self._memo:
                sample = {n: c.options[int(v)] for n, c, v in zip(self.names, self.choices, row)}
                self._memo[k] = self.pred.predict(self.space.decode(sample))
            out[i] = self._memo[k]
        return out


def anb_predictor(device: str, num_classes: int = 1000) -> AnbDevicePredictor:
    return AnbDevicePredictor(device, num_classes=num_classes)


def madds_predictor(device: str = "madds", num_classes: int = 1000) -> MaddsPredictor:
    return MaddsPredictor(num_classes)


def model_device_rows() -> list[dict]:
    """``mnas latency list`` rows for the model devices (name, kind, description, model file)."""
    from mnas.latency.predictor import MODEL_DEVICES

    rows = []
    for name, (_, kind) in MODEL_DEVICES.items():
        if name == "madds":
            rows.append({"device": name, "ops": 0, "engine": kind, "cpu": "value = millions of multiply-adds, any network",
                         "kind": kind, "path": None})
            continue
        path = MODELS / f"anb_{name}.json"
        rows.append({"device": name, "ops": 0, "engine": kind, "cpu": ANB_DEVICES.get(name, name) + "; anb space only",
                     "kind": kind, "path": str(path)})
    return rows
