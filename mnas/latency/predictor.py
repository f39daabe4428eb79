"""``predict(net) -> ms``: the only thing search and pruning see of a device.

A prediction is the sum of the network's op latencies from the device's table,
times the table's whole-network correction ``a * sum + b`` (fitted by
:func:`mnas.latency.calibration.calibrate` from a few end-to-end measurements,
stored in the table header; (1, 0) when the table has none).

:meth:`Predictor.compile_space` builds a vectorised predictor for a search
space: per position, an array of costs indexed by the options of the few
choices that position depends on, so a batch of samples (an index matrix) is
predicted with a handful of numpy gathers.

A table of per-resolution tables (OFA's, imported by :mod:`mnas.latency.ofa`;
header ``per_resolution``) prices a network from the ops measured at its own
input resolution: every lookup key gets the suffix ``@r{resolution}``.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mnas.arch import Network
from mnas.errors import MnasError
from mnas.latency.keys import NUM_CLASSES, network_keys
from mnas.latency.table import LatencyTable, load_table, resolve_table

SHOW_MISSING = 5


class Predictor:
    """Latency in ms of any network whose ops are in ``table``."""

    def __init__(self, table: LatencyTable, num_classes: int = NUM_CLASSES, source: str | None = None):
        self.table = table
        self.num_classes = num_classes
        self.device: str = table.device
        self.source = source or (str(table.path) if table.path else self.device)
        self._ms = table.corrected_ms()  # op ms (times the table's per-op-type factors, where calibrated)
        # A modelled table (pixel1) stores its cost model's weights: ops it does not list are priced by it.
        self._weights = table.meta.get("feature_weights_ms") or None
        self.modelled_ops = 0  # how many unlisted ops the model priced (for reports)
        # set by get_predictor for a table measured on this machine: measures missing ops (profiler.profile_missing)
        self.on_demand = None
        # OFA's folders of per-resolution tables: each network is priced from its own resolution's ops
        self.resolutions: tuple[int, ...] | None = tuple(table.meta["per_resolution"]) if table.meta.get(
            "per_resolution") else None

    def key_at(self, key: str, resolution: int) -> str:
        """The table key of op ``key`` in a network at ``resolution`` (``key`` itself unless per-resolution)."""
        if self.resolutions is None:
            return key
        from mnas.latency.ofa import at_resolution

        return at_resolution(key, resolution)

    def keys(self, net: Network) -> list[str]:
        """The table keys of ``net``'s ops in execution order (:func:`network_keys`, per resolution where so)."""
        keys = network_keys(net, self.num_classes)
        return keys if self.resolutions is None else [self.key_at(k, net.resolution) for k in keys]

    def __repr__(self) -> str:
        return f"Predictor(device={self.device!r}, ops={len(self.table)}, correction={self.table.correction})"

    def missing(self, net: Network) -> list[str]:
        """Op keys of ``net`` that the table lacks and cannot model (distinct, in network order)."""
        if self._weights:
            return []
        keys = list(dict.fromkeys(k for k in self.keys(net) if k not in self._ms))
        if keys and self.on_demand is not None:  # a table of this machine: measure them now, append them
            self.on_demand(self, net, keys)
            keys = [k for k in keys if k not in self._ms]
        return keys

    def _modelled_sum(self, net: Network) -> float:
        from mnas.latency.keys import head_ops, layer_key
        from mnas.latency.opmodel import head_features, layer_features, op_cost_ms

        total = 0.0
        for layer in net.layers():
            ms = self._ms.get(self.key_at(layer_key(layer), net.resolution))
            if ms is None:
                ms = op_cost_ms(layer_features(layer), self._weights)
                self.modelled_ops += 1
            total += ms
        for hop in head_ops(net, self.num_classes):
            ms = self._ms.get(self.key_at(hop.key, net.resolution))
            if ms is None:
                ms = op_cost_ms(head_features(hop), self._weights)
                self.modelled_ops += 1
            total += ms
        return total

    def _missing_error(self, keys: list[str], net: Network) -> MnasError:
        shown = ", ".join(keys[:SHOW_MISSING])
        more = f" (and {len(keys) - SHOW_MISSING} more)" if len(keys) > SHOW_MISSING else ""
        engine = str(self.table.meta.get("engine", "onnxruntime")).split()[0]
        arch = str(net).replace("'", "")
        from mnas.latency.table import other_cpu

        why = other_cpu(self.table.meta, unknown_ok=True)
        if self.resolutions is not None and net.resolution not in self.resolutions:
            listed = ", ".join(map(str, self.resolutions))
            return MnasError(f"latency table {self.source} has per-resolution tables for {listed} px only: a network "
                             f"at {net.resolution} px is not priced (choose one of those resolutions)")
        if why:  # ops measured here would not belong to that table
            return MnasError(f"latency table {self.source} lacks {len(keys)} op(s) of this network ({shown}{more}) and "
                             f"cannot be extended here: {why}; build a table for this machine with `mnas latency "
                             f"calibrate --device NAME --engine {engine} --space ...`")
        return MnasError(
            f"latency table {self.source} lacks {len(keys)} op(s) of this network: {shown}{more}; measure them with "
            f"`mnas latency profile --device {self.device} --engine {engine} --arch '{arch}'`"
        )

    def op_sum(self, net: Network) -> float:
        """Sum of the op latencies (no correction); raises listing every missing key."""
        total = 0.0
        keys = self.keys(net)
        try:
            for k in keys:
                total += self._ms[k]
        except KeyError:
            if self._weights:
                return self._modelled_sum(net)
            missing = self.missing(net)
            if not missing:  # measured on demand
                return self.op_sum(net)
            raise self._missing_error(missing, net) from None
        return total

    def predict(self, net: Network) -> float:
        a, b = self.table.correction
        return a * self.op_sum(net) + b

    def predict_many(self, nets: Iterable[Network]) -> np.ndarray:
        a, b = self.table.correction
        return a * np.array([self.op_sum(n) for n in nets], dtype=float) + b

    def op_breakdown(self, net: Network) -> list[tuple[str, float]]:
        """(key, ms) per op in order; an op the table lacks is modelled (modelled tables) or raises."""
        from mnas.latency.keys import head_ops, layer_key
        from mnas.latency.opmodel import head_features, layer_features, op_cost_ms

        missing = self.missing(net)
        if missing:
            raise self._missing_error(missing, net)
        r = net.resolution
        ops = [(self.key_at(layer_key(la), r), lambda la=la: layer_features(la)) for la in net.layers()]
        ops += [(self.key_at(h.key, r), lambda h=h: head_features(h)) for h in head_ops(net, self.num_classes)]
        return [(k, self._ms[k] if k in self._ms else op_cost_ms(f(), self._weights)) for k, f in ops]

    def compile_space(self, space, probes: int = 8, check: int = 200, seed: int = 0) -> "SpacePredictor":
        return SpacePredictor(self, space, probes=probes, check=check, seed=seed)


# Devices that are models, not op tables: name -> ("module:loader", kind). ``loader(name, num_classes)``
# returns an object with Predictor's interface (see mnas/latency/surrogate.py). Add a line to add one.
MODEL_DEVICES: dict[str, tuple[str, str]] = {
    "madds": ("mnas.latency.surrogate:madds_predictor", "analytic: millions of multiply-adds"),
    **{d: ("mnas.latency.surrogate:anb_predictor", "surrogate of Accel-NASBench measurements")
       for d in ("zcu102", "vck190", "a100", "rtx3090", "tpuv2", "tpuv3")},
}


def get_predictor(device_or_path: str | Path, num_classes: int = NUM_CLASSES) -> Predictor:
    """A shipped/user device name (``mnas latency list``), a model device (:data:`MODEL_DEVICES`),
    an mnas table file, an OFA YAML table, or ``DEVICE@ERA`` (:mod:`mnas.latency.pixel1_era`)."""
    if str(device_or_path) in MODEL_DEVICES:
        mkey = ("model", str(device_or_path), num_classes, "")
        if mkey not in _CACHE:
            import importlib

            module, _, fn = MODEL_DEVICES[str(device_or_path)][0].partition(":")
            _CACHE[mkey] = getattr(importlib.import_module(module), fn)(str(device_or_path), num_classes=num_classes)
        return _CACHE[mkey]
    if "@" in str(device_or_path) and not Path(device_or_path).is_file():  # DEVICE@ERA: mnas/latency/pixel1_era.py
        from mnas.latency.pixel1_era import era_table, split_era

        base_name, era = split_era(str(device_or_path)) or (str(device_or_path), "")
        base = get_predictor(base_name, num_classes)
        ekey = ("era", str(device_or_path), num_classes, id(base))  # base stays cached, so its id is not reused
        if ekey not in _CACHE:
            table = era_table(getattr(base, "table", None), base.device, era, str(device_or_path))
            _CACHE[ekey] = Predictor(table, num_classes=num_classes, source=str(device_or_path))
        return _CACHE[ekey]
    path = resolve_table(device_or_path)
    stamp = (str(path.resolve()), path.stat().st_mtime_ns, num_classes, str(device_or_path))
    if stamp not in _CACHE:  # a table file is read once per process (again if it changes)
        if path.suffix in (".yaml", ".yml"):
            from mnas.latency.ofa import load_ofa_table

            table = load_ofa_table(path)
        else:
            table = load_table(path)
        _CACHE[stamp] = Predictor(table, num_classes=num_classes, source=str(device_or_path))
        from mnas.latency.table import warn_if_other_cpu

        warn_if_other_cpu(table)  # a measured table from another CPU: one line, once per process
        from mnas.latency.profiler import on_demand_for

        _CACHE[stamp].on_demand = on_demand_for(table)  # None unless measured here (then missing ops are profiled)
    return _CACHE[stamp]


_CACHE: dict[tuple, Predictor] = {}


# --------------------------------------------------------------------------- vectorised path

class SpacePredictor:
    """Predict many samples of one search space from an index matrix, with numpy only.

    For every op position (``decode_layers`` position key, plus the head) it finds
    the choices that change the position's key (by varying each choice from a few
    random samples), tabulates the cost for every combination of those choices'
    options, and sums ``cost[position][ravel(indices of its choices)]``.
    A check compares it with the plain per-network path on ``check`` random
    samples; a dependency that shows only together with another choice (a layer
    that exists only at depth +1 *and* op ir) is found by probing again from the
    failing samples (up to 6 rounds), else it refuses to build.
    """

    MAX_CELLS = 1 << 20

    def __init__(self, pred: Predictor, space, probes: int = 8, check: int = 200, seed: int = 0):
        self.pred, self.space = pred, space
        self.choices = list(space.choices())
        self.names = [c.name for c in self.choices]
        rng = random.Random(seed)
        self.deps_sets: dict[str, set[int]] = {}
        self._probe([space.sample(rng) for _ in range(probes)])
        self._base = space.sample(rng)
        for attempt in range(6):
            self._tabulate()
            samples = [space.sample(rng) for _ in range(check)]
            if not samples:
                break
            fast = self.predict_indices(self.encode(samples))
            slow = pred.predict_many(space.decode(s) for s in samples)
            bad = np.flatnonzero(np.abs(fast - slow) > 1e-9 * np.maximum(1.0, np.abs(slow)))
            if not len(bad):
                break
            # a dependency that shows only together with other choices: probe again from the failures
            self._probe([samples[i] for i in bad[:16]])
        else:
            raise MnasError(f"vectorised latency still disagrees with the per-network path on {len(bad)} of "
                            f"{len(samples)} samples of {getattr(space, 'name', space)}")

    def _probe(self, bases: list[dict]) -> None:
        """Record, per position, every choice whose change alters that position's op key from some base."""
        for s in bases:
            ref = self._position_keys(s)
            for p in ref:
                self.deps_sets.setdefault(p, set())
            for j, c in enumerate(self.choices):
                for opt in c.options:
                    if opt == s[c.name]:
                        continue
                    alt = self._position_keys({**s, c.name: opt})
                    for p in set(ref) | set(alt):
                        self.deps_sets.setdefault(p, set())
                        if ref.get(p) != alt.get(p):
                            self.deps_sets[p].add(j)

    def _tabulate(self) -> None:
        """Cost arrays over the options of each position's dependencies (others at a fixed base sample)."""
        pred, sizes = self.pred, [len(c.options) for c in self.choices]
        self.positions = sorted(self.deps_sets)
        self.deps = [sorted(self.deps_sets[p]) for p in self.positions]
        self.tables = []
        for p, dj in zip(self.positions, self.deps):
            shape = tuple(sizes[j] for j in dj)
            if int(np.prod(shape, dtype=np.int64)) > self.MAX_CELLS:
                raise MnasError(f"position {p} depends on too many choices ({len(dj)}) for a vectorised table")
            arr = np.zeros(shape or (1,), dtype=np.float64)
            for combo in itertools.product(*(range(n) for n in shape)):
                s = dict(self._base)
                for j, oi in zip(dj, combo):
                    s[self.names[j]] = self.choices[j].options[oi]
                key = self._position_keys(s).get(p)
                if key is None:
                    cost = 0.0
                elif key in pred._ms:
                    cost = pred._ms[key]
                elif pred._weights:  # a modelled table (pixel1) prices an unlisted op as predict() does
                    cost = self._modelled_cost(s, p)
                elif pred.on_demand is not None and not pred.missing(self.space.decode(s)):
                    cost = pred._ms[key]  # a table of this machine: measured just now
                else:
                    raise pred._missing_error([key], self.space.decode(s))
                arr[combo if combo else 0] = cost
            self.tables.append(arr.ravel())
        # one stride matrix (choices x positions) and one flat cost vector: a batch is a matmul and a gather
        self.stride_matrix = np.zeros((len(self.choices), len(self.positions)), dtype=np.float64)
        for col, dj in enumerate(self.deps):
            st = np.cumprod([1] + [sizes[j] for j in reversed(dj)])[:-1][::-1]
            for j, v in zip(dj, st):
                self.stride_matrix[j, col] = v
        self.offsets = np.cumsum([0] + [len(t) for t in self.tables[:-1]]).astype(np.int64)
        self.flat = np.concatenate(self.tables)

    def _modelled_cost(self, sample: dict, position: str) -> float:
        """The cost model's price of the op at ``position`` of ``sample`` (an op the table does not list)."""
        from mnas.latency.keys import head_ops_at
        from mnas.latency.opmodel import head_features, layer_features, op_cost_ms

        layers = self.space.decode_layers(sample)
        if position.startswith("head."):
            last = layers[-1][1]
            hop = head_ops_at(last.hout, last.cout, self.space.head, self.pred.num_classes)[int(position[5:])]
            return op_cost_ms(head_features(hop), self.pred._weights)
        return op_cost_ms(layer_features(dict(layers)[position]), self.pred._weights)

    def _position_keys(self, sample: dict) -> dict[str, str]:
        from mnas.latency.keys import head_ops_at, layer_key

        layers = self.space.decode_layers(sample)
        res = layers[0][1].hin  # the stem's input: the network's resolution
        at = self.pred.key_at
        out = {pos: at(layer_key(layer), res) for pos, layer in layers}
        last = layers[-1][1]
        for i, hop in enumerate(head_ops_at(last.hout, last.cout, self.space.head, self.pred.num_classes)):
            out[f"head.{i}"] = at(hop.key, res)
        return out

    def encode(self, samples: Sequence[dict]) -> np.ndarray:
        """Samples (dicts) -> index matrix (n_samples × n_choices) of option positions."""
        lookup = [{o: i for i, o in enumerate(c.options)} for c in self.choices]
        return np.array([[lookup[j][s[n]] for j, n in enumerate(self.names)] for s in samples], dtype=np.int64)

    def predict_indices(self, idx: np.ndarray) -> np.ndarray:
        """Latency (ms) for each row of an index matrix from :meth:`encode`."""
        idx = np.asarray(idx)
        cells = (idx @ self.stride_matrix).astype(np.int64) + self.offsets  # exact: cells < 2**53
        a, b = self.pred.table.correction
        return a * self.flat[cells].sum(1) + b
