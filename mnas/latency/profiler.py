"""Measure ops in isolation on a real engine and write them to a table, resumably.

Every distinct op (a block at one input shape, or a piece of the head) is built
as a tiny module with the one builder (:func:`mnas.model.build_block`,
:class:`mnas.model.Classifier`), then timed:

- ``onnxruntime``: exported to ONNX in memory (legacy exporter, opset 17), one
  ``InferenceSession`` per op, ``intra_op_num_threads`` = threads (1 by default),
  all graph optimisations on (BN folded into the conv, as in a full network).
- ``torch``: eager, ``torch.set_num_threads(threads)``, ``torch.inference_mode``.

Timing: warm-up, then each call is timed on its own for
about ``budget_s`` seconds (at least ``min_reps`` calls); the entry is the
minimum (default; ``stat="median"`` for the median), less the engine's fixed call overhead (the same statistic of calling a trivial model,
recorded in the header as ``overhead_ms``); the spread is the repeats'
inter-quartile range / 1.349 (a robust standard deviation).

Clock and statistic: on a shared machine (here: 2 cores, load 4-7 from other
users) wall-clock timings of a 15 ms network doubled with the others' load, even
their minimum (a run that long is always preempted). So the default clock is the
calling thread's CPU time (``time.thread_time_ns``; both engines run a
one-thread model on the calling thread), which does not count time spent
preempted, and the default statistic is the minimum. ``clock="wall"``,
``stat="median"`` give the usual wall-clock median on a quiet device.

Stable eager timings: glibc moves its mmap threshold as large tensors are freed,
so the same op runs ~30 % faster or slower depending on what ran before. The
CLI re-executes itself once with :data:`MALLOC_ENV` (fixed thresholds, so the
allocator keeps large buffers on the heap and never gives them back) and records
the setting in the table header.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from mnas.arch import Layer, Network
from mnas.errors import MnasError
from mnas.latency.keys import HeadOp, head_ops, head_ops_at, layer_key
from mnas.latency.table import Entry, LatencyTable, load_table, other_cpu, this_cpu

ENGINES = ("onnxruntime", "torch")
STATS = ("min", "median")
CLOCKS = ("cpu", "wall")
# Fixed glibc thresholds (32 MiB mmap: every activation of these nets stays on the heap; 1 GiB trim).
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}


# --------------------------------------------------------------------------- ops

@dataclass
class Op:
    """One distinct op: its key, its input shape and how to build it as a module."""

    key: str
    input_shape: tuple[int, ...]
    build: Callable[[], object]  # -> torch.nn.Module


def layer_op(layer: Layer) -> Op:
    def build():
        from mnas.model import build_block, init_weights

        m = build_block(layer)
        init_weights(m)
        return m

    return Op(layer_key(layer), (1, layer.cin, layer.hin, layer.hin), build)


def _head_op(net: Network, hop: HeadOp, num_classes: int) -> Op:
    def build():
        from mnas.model import Classifier, init_weights

        cls = Classifier(net, num_classes)
        init_weights(cls)
        if hop.kind == "conv":
            return cls.conv
        if hop.kind == "hidden":
            return cls.hidden
        if hop.kind == "fc":
            return cls.fc
        return GlobalPool()

    shape = (1, hop.cin, hop.size, hop.size) if hop.kind in ("conv", "pool") else (1, hop.cin)
    return Op(hop.key, shape, build)


def GlobalPool():
    """The head's global average pooling (what :class:`mnas.model.Classifier` does after its conv)."""
    import torch

    class _Pool(torch.nn.Module):
        def forward(self, x):
            return x.mean((2, 3))

    return _Pool()


def network_ops(net: Network, num_classes: int = 1000) -> list[Op]:
    """Every op of ``net`` in order (stem, blocks, head pieces); keys match :func:`network_keys`."""
    ops = [layer_op(layer) for layer in net.layers()]
    return ops + [_head_op(net, h, num_classes) for h in head_ops(net, num_classes)]


def distinct_ops(nets: Iterable[Network] = (), layers: Iterable[Layer] = (), num_classes: int = 1000) -> list[Op]:
    """Distinct ops (first occurrence wins) of networks and loose layers, in a stable order."""
    seen: dict[str, Op] = {}
    for layer in layers:
        op = layer_op(layer)
        seen.setdefault(op.key, op)
    for net in nets:
        for op in network_ops(net, num_classes):
            seen.setdefault(op.key, op)
    return list(seen.values())


def space_ops(space, resolutions: Iterable[int] | None = None, num_classes: int = 1000) -> list[Op]:
    """Every distinct op any architecture of ``space`` can produce at ``resolutions`` (head pieces included)."""
    from mnas.arch import Conv

    layers = sorted(space.distinct_layers(resolutions), key=lambda l: (l.hin, l.cin, layer_key(l)))
    ops = distinct_ops(layers=layers, num_classes=num_classes)
    seen = {op.key for op in ops}
    for c, h in sorted(space.head_inputs(resolutions)):
        # a stand-in network ending in c channels, so the head is built by the one Classifier
        stand_in = Network(stem=Conv(out=c, kernel=1, stride=1), blocks=(), head=space.head, resolution=max(8, h))
        for hop in head_ops_at(h, c, space.head, num_classes):
            if hop.key not in seen:
                seen.add(hop.key)
                ops.append(_head_op(stand_in, hop, num_classes))
    return ops


# --------------------------------------------------------------------------- engines

class Runner:
    """Times a module on one engine; ``time(module, shape)`` -> (median ms, spread ms, count)."""

    def __init__(self, engine: str, threads: int = 1, budget_s: float = 0.08, min_reps: int = 15,
                 warmup_s: float = 0.01, stat: str = "min", clock: str = "cpu"):
        if stat not in STATS:
            raise MnasError(f"unknown statistic {stat!r} (use {' or '.join(STATS)})")
        if clock not in CLOCKS:
            raise MnasError(f"unknown clock {clock!r} (use {' or '.join(CLOCKS)})")
        self.stat, self.clock = stat, clock
        self._now = time.thread_time_ns if clock == "cpu" else time.perf_counter_ns
        if engine not in ENGINES:
            raise MnasError(f"unknown engine {engine!r} (use {' or '.join(ENGINES)})")
        import importlib.util

        if importlib.util.find_spec(engine) is None:
            other = next(e for e in ENGINES if e != engine)
            raise MnasError(f"engine {engine} is not installed in this Python ({sys.executable}): "
                            f"`pip install {engine}`, or use --engine {other}")
        if threads < 1:
            raise MnasError(f"--threads must be >= 1, got {threads}")
        self.engine, self.threads = engine, threads
        self.budget_s, self.min_reps, self.warmup_s = budget_s, min_reps, warmup_s
        import torch

        torch.set_num_threads(threads)
        self._overhead: float | None = None

    # -- one callable per engine
    def _callable(self, module, shape):
        import torch

        module = module.eval()
        x = torch.randn(*shape)
        if self.engine == "torch":
            def run():
                with torch.inference_mode():
                    module(x)
            return run
        import io

        import onnxruntime as ort

        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(module, (x,), buf, input_names=["x"], opset_version=17, dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        return lambda: sess.run(None, feed)

    def _time(self, run, budget_s: float, min_reps: int) -> tuple[float, float, int]:
        t_end = time.perf_counter() + self.warmup_s
        run()
        while time.perf_counter() < t_end:
            run()
        times = []
        t_end = time.perf_counter() + budget_s
        while len(times) < min_reps or time.perf_counter() < t_end:
            t0 = self._now()
            run()
            times.append(self._now() - t0)
            if len(times) >= 20_000:
                break
        a = np.asarray(times, dtype=float) / 1e6
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return float(a.min() if self.stat == "min" else med), float((q3 - q1) / 1.349), len(a)

    @property
    def overhead_ms(self) -> float:
        """The fixed cost of one call on this engine (a trivial model), subtracted from every op."""
        if self._overhead is None:
            import torch

            self._overhead = self._time(self._callable(torch.nn.Identity(), (1, 1)), 0.1, 50)[0]
        return self._overhead

    def time_op(self, op: Op) -> Entry:
        med, spread, n = self._time(self._callable(op.build(), op.input_shape), self.budget_s, self.min_reps)
        return Entry(max(0.0, med - self.overhead_ms), spread, n)

    def time_network(self, net: Network, num_classes: int = 1000, budget_s: float = 0.4, min_reps: int = 10) -> float:
        """End-to-end median latency (ms) of the whole built network, call overhead included."""
        from mnas.model import build

        shape = (1, net.in_channels, net.resolution, net.resolution)
        return self._time(self._callable(build(net, num_classes), shape), budget_s, min_reps)[0]

    def time_networks(self, nets: list[Network], num_classes: int = 1000, rounds: int = 3, budget_s: float = 0.15,
                      progress: bool = True) -> np.ndarray:
        """End-to-end latency (ms) of each network: the statistic over ``rounds`` interleaved passes.

        Every network is built (and exported) once; each round times every network
        for ``budget_s``, so a burst of load from other processes hits one round of
        many networks instead of all rounds of one.
        """
        per_round = self.time_calls(self.network_calls(nets, num_classes, progress), rounds, budget_s, progress)
        return per_round.min(0) if self.stat == "min" else np.median(per_round, 0)

    def network_calls(self, nets: list[Network], num_classes: int = 1000, progress: bool = True) -> list:
        """One ready-to-time callable per whole network (built, and exported for onnxruntime, once)."""
        from tqdm import tqdm

        from mnas.model import build

        return [self._callable(build(n, num_classes), (1, n.in_channels, n.resolution, n.resolution))
                for n in tqdm(nets, desc="build", unit="net", file=sys.stderr, disable=not progress)]

    def time_calls(self, calls: list, rounds: int = 1, budget_s: float = 0.15, progress: bool = True) -> np.ndarray:
        """(rounds × networks) timings: each round times every callable once, in order (interleaved rounds)."""
        from tqdm import tqdm

        per_round = np.zeros((rounds, len(calls)))
        bar = tqdm(total=rounds * len(calls), desc="measure", unit="net", file=sys.stderr, disable=not progress)
        for r in range(rounds):
            for i, run in enumerate(calls):
                per_round[r, i] = self._time(run, budget_s, 5)[0]
                bar.update()
        bar.close()
        return per_round

    def describe(self) -> str:
        if self.engine == "onnxruntime":
            import onnxruntime as ort

            return f"onnxruntime {ort.__version__}"
        import torch

        return f"torch {torch.__version__}"


# --------------------------------------------------------------------------- the table being built

def cpu_model() -> str:
    return this_cpu()["model"]


def new_meta(device: str, runner: Runner) -> dict:
    method = (f"isolated ops, {runner.engine} {'exported to ONNX (opset 17), ORT_ENABLE_ALL' if runner.engine == 'onnxruntime' else 'eager, inference_mode'}; "
              f"warm-up {runner.warmup_s:g} s, {runner.stat} of >= {runner.min_reps} calls timed by "
              f"{'thread CPU time' if runner.clock == 'cpu' else 'wall clock'} over ~{runner.budget_s:g} s, "
              f"less the engine's call overhead (overhead_ms); spread = IQR/1.349; batch 1, float32")
    return {
        "device": device,
        "engine": runner.describe(),
        "threads": runner.threads,
        "stat": runner.stat,
        "clock": "thread CPU time" if runner.clock == "cpu" else "wall clock",
        "cpu": cpu_model(),
        "cpu_info": this_cpu(),
        "host": platform.node(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "method": method,
        "unit": "ms",
        "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
        "overhead_ms": round(runner.overhead_ms, 6),
        "budget_s": runner.budget_s,
    }


def open_table(path: Path, device: str, runner: Runner) -> LatencyTable:
    """Load an existing table to resume (same engine and threads), or start a new file."""
    if path.is_file():
        table = load_table(path)
        clock = "thread CPU time" if runner.clock == "cpu" else "wall clock"
        for k, v in (("engine", runner.describe()), ("threads", runner.threads), ("stat", runner.stat), ("clock", clock)):
            if table.meta.get(k) != v:
                raise MnasError(f"{path} was measured with {k} {table.meta.get(k)!r}, not {v!r}: "
                                f"give another --out (or --device) to start a new table")
        why = other_cpu(table.meta, unknown_ok=True)
        if why:
            raise MnasError(f"{path}: cannot add ops measured here to this table: {why}; give another --out "
                            f"(or --device) to build a table for this machine")
        return table
    table = LatencyTable(meta=new_meta(device, runner), path=path)
    table.save()
    return table


def profile_ops(ops: list[Op], table: LatencyTable, runner: Runner, limit: int | None = None,
                progress: bool = True, on_measured: Callable[[str, Entry], None] | None = None,
                remeasure: bool = False) -> int:
    """Measure the ops not yet in ``table``, appending each as it finishes; returns how many were measured.

    ``limit`` stops after that many (a controlled "kill" for tests and short sessions).
    ``remeasure`` measures every op again (another pass at another time); with the
    ``min`` statistic the entry keeps the smaller of the two minima, so passes at
    quieter moments refine a table measured on a busy machine. The line appended
    last for a key wins when the file is read.
    """
    from tqdm import tqdm

    todo = [op for op in ops if remeasure or op.key not in table]
    if limit is not None:
        todo = todo[:limit]
    bar = tqdm(todo, desc=f"profile {table.device}", unit="op", file=sys.stderr, disable=not progress,
               dynamic_ncols=True)
    for op in bar:
        entry = runner.time_op(op)
        old = table.entries.get(op.key)
        if old is not None and runner.stat == "min":  # another pass: keep the smaller minimum
            entry = Entry(min(old.ms, entry.ms), min(old.spread, entry.spread), old.count + entry.count)
        table.append(op.key, entry)
        if on_measured:
            on_measured(op.key, entry)
    if remeasure and todo:
        table.save()  # one line per op again (the pass appended a second line per key)
    return len(todo)


def ensure_malloc_env() -> None:
    """Re-execute this process once with :data:`MALLOC_ENV` (glibc reads it only at start-up)."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()) or os.environ.get("MNAS_NO_REEXEC"):
        return
    env = {**os.environ, **MALLOC_ENV, "MNAS_NO_REEXEC": "1"}
    sys.stderr.flush()
    sys.stdout.flush()
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)


# --------------------------------------------------------------------------- composition: ops -> whole network

COMPOSITION_RIDGE = 0.05  # pull of each per-type factor towards 1 (relative to one network's squared error)


def type_sums(table: LatencyTable, net: Network, num_classes: int = 1000) -> dict[str, float]:
    """Raw op ms of ``net`` summed per op type (:func:`mnas.latency.table.op_type`)."""
    from mnas.latency.keys import network_keys
    from mnas.latency.table import op_type

    out: dict[str, float] = {}
    for k in network_keys(net, num_classes):
        if k not in table.entries:
            raise MnasError(f"latency table {table.path} lacks op {k}: profile the space first")
        out[op_type(k)] = out.get(op_type(k), 0.0) + table.entries[k].ms
    return out


def fit_composition(sums: list[dict[str, float]], measured: np.ndarray, ridge: float = COMPOSITION_RIDGE) -> dict:
    """``latency = sum_t f_t * (op ms of type t) + b``, fitted on whole networks (least relative squares).

    Isolated ops do not add up to a network (kernels fuse, caches stay warm or
    cold, the engine's per-call cost is paid once): one factor per op type
    absorbs what is systematic per kind of op, ``b`` the per-network constant.
    Factors are bounded to [0.25, 4] and pulled towards 1 by ``ridge`` so a type
    that barely varies among the networks keeps its measured cost.
    """
    from scipy.optimize import lsq_linear

    measured = np.asarray(measured, float)
    types = sorted({t for s in sums for t in s})
    S = np.array([[s.get(t, 0.0) for t in types] for s in sums])
    A = np.hstack([S, np.ones((len(S), 1))]) / measured[:, None]
    rhs = np.ones(len(S))
    lam = np.sqrt(ridge)
    R = np.hstack([np.eye(len(types)) * lam, np.zeros((len(types), 1))])
    res = lsq_linear(np.vstack([A, R]), np.concatenate([rhs, np.full(len(types), lam)]),
                     bounds=([0.25] * len(types) + [-np.inf], [4.0] * len(types) + [np.inf]))
    f, b = res.x[:-1], float(res.x[-1])
    fit = S @ f + b
    raw = S.sum(1)
    return {
        "a": 1.0, "b": round(b, 6), "per_type": {t: round(float(v), 6) for t, v in zip(types, f)},
        "n": int(len(S)), "method": "per-op-type factors + constant, least relative squares on whole networks",
        "ridge": ridge,
        "mape_raw_sum": round(float(np.mean(np.abs(raw - measured) / measured) * 100), 3),
        "mape_fit": round(float(np.mean(np.abs(fit - measured) / measured) * 100), 3),
    }


# --------------------------------------------------------------------------- on-demand profiling

ON_DEMAND_ENV = "MNAS_NO_ON_DEMAND"  # set it to forbid measuring missing ops while searching / pruning


def on_demand_for(table: LatencyTable):
    """``profile_missing`` when ``table`` was measured on this machine and can be extended here, else None."""
    from mnas.latency.table import is_measured

    if (not is_measured(table.meta) or table.path is None or Path(table.path).suffix != ".csv"
            or os.environ.get(ON_DEMAND_ENV) or other_cpu(table.meta) is not None):
        return None
    if str(table.meta.get("engine", "")).startswith("torch") and table.meta.get("malloc_env") and \
            any(os.environ.get(k) != v for k, v in table.meta["malloc_env"].items()):
        return None  # eager torch timings depend on the allocator's thresholds: only the `mnas` CLI sets them
    return profile_missing


def _runner_for(table: LatencyTable) -> Runner:
    meta = table.meta
    engine = str(meta.get("engine", "")).split(" ")[0]
    runner = Runner(engine, threads=int(meta.get("threads") or 1), budget_s=float(meta.get("budget_s", 0.08)),
                    stat=str(meta.get("stat", "min")), clock="wall" if meta.get("clock") == "wall clock" else "cpu")
    if runner.describe() != meta.get("engine"):
        raise MnasError(f"{table.path} was measured with {meta.get('engine')}, this Python has {runner.describe()}: "
                        "ops measured now would not match; build a new table with `mnas latency calibrate`")
    return runner


def profile_missing(pred, net: Network, keys: list[str], progress: bool = True) -> int:
    """Measure ``keys`` (ops of ``net`` the table lacks) with the table's own protocol, append them, update ``pred``.

    Used by search and NetAdapt on a table of this machine: NetAdapt's proposals
    produce widths no table lists. One progress line per batch; each op is
    appended as it finishes (a kill keeps them; the header is left as it is).
    """
    table = pred.table
    wanted = set(keys)
    ops = [op for op in network_ops(net, pred.num_classes) if op.key in wanted]
    ops = list({op.key: op for op in ops}.values())
    if not ops:
        return 0
    if progress:
        sys.stderr.write(f"{table.path}: measuring {len(ops)} missing op(s) on demand ({table.meta.get('engine')}, "
                         f"this machine)\n")
    runner = getattr(pred, "_on_demand_runner", None) or _runner_for(table)
    pred._on_demand_runner = runner
    n = profile_ops(ops, table, runner, progress=False)
    pred._ms.update({k: v for k, v in table.corrected_ms().items() if k in wanted})
    return n
