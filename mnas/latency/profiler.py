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
from mnas.latency.table import Entry, LatencyTable, load_table

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
        from tqdm import tqdm

        from mnas.model import build

        calls = [self._callable(build(n, num_classes), (1, n.in_channels, n.resolution, n.resolution))
                 for n in tqdm(nets, desc="build", unit="net", file=sys.stderr, disable=not progress)]
        per_round = np.zeros((rounds, len(nets)))
        bar = tqdm(total=rounds * len(nets), desc="measure", unit="net", file=sys.stderr, disable=not progress)
        for r in range(rounds):
            for i, run in enumerate(calls):
                per_round[r, i] = self._time(run, budget_s, 5)[0]
                bar.update()
        bar.close()
        return per_round.min(0) if self.stat == "min" else np.median(per_round, 0)

    def describe(self) -> str:
        if self.engine == "onnxruntime":
            import onnxruntime as ort

            return f"onnxruntime {ort.__version__}"
        import torch

        return f"torch {torch.__version__}"


# --------------------------------------------------------------------------- the table being built

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
        "host": platform.node(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "method": method,
        "unit": "ms",
        "malloc_env": {k: os.environ.get(k) for k in MALLOC_ENV},
        "overhead_ms": round(runner.overhead_ms, 6),
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
    return len(todo)


def calibrate(table: LatencyTable, nets: list[Network], runner: Runner, names: list[str] | None = None,
              progress: bool = True, num_classes: int = 1000, rounds: int = 8) -> dict:
    """Measure ``nets`` end to end and fit ``latency = a * sum(ops) + b`` (header ``correction``).

    Each network is measured as :func:`mnas.latency.validate.validate` measures:
    the statistic over ``rounds`` interleaved passes. Points from earlier
    calibrations of the same table (header ``networks``/``points_ms``, as [op sum,
    measured] ms) are kept and refitted together; a name measured again is replaced.
    """
    from mnas.latency.predictor import Predictor

    pred = Predictor(table, num_classes=num_classes)
    names = names or [str(n) for n in nets]
    prev = table.meta.get("correction") or {}
    points = dict(zip(prev.get("networks", []), prev.get("points_ms", [])))  # earlier runs' networks are kept
    sums = [pred.op_sum(net) for net in nets]  # a missing op fails here, before any measuring
    measured = runner.time_networks(nets, num_classes, rounds=rounds, progress=progress)
    for name, s_ms, m_ms in zip(names, sums, measured):
        points[name] = [round(float(s_ms), 4), round(float(m_ms), 4)]
    s, m = (np.array([p[i] for p in points.values()], dtype=float) for i in (0, 1))
    if len(s) >= 2 and np.ptp(s) > 0:
        a, b = np.polyfit(s, m, 1)
    else:
        a, b = float(m.sum() / s.sum()), 0.0
    fit = a * s + b
    corr = {
        "a": round(float(a), 6), "b": round(float(b), 6), "n": int(len(s)), "rounds": rounds,
        "mape_raw_sum": round(float(np.mean(np.abs(s - m) / m) * 100), 3),
        "mape_fit": round(float(np.mean(np.abs(fit - m) / m) * 100), 3),
        "networks": list(points), "points_ms": list(points.values()),
    }
    table.meta["correction"] = corr
    table.save()
    return corr


def ensure_malloc_env() -> None:
    """Re-execute this process once with :data:`MALLOC_ENV` (glibc reads it only at start-up)."""
    if all(os.environ.get(k) == v for k, v in MALLOC_ENV.items()) or os.environ.get("MNAS_NO_REEXEC"):
        return
    env = {**os.environ, **MALLOC_ENV, "MNAS_NO_REEXEC": "1"}
    sys.stderr.flush()
    sys.stdout.flush()
    argv = list(getattr(sys, "orig_argv", [])) or [sys.executable, *sys.argv]
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
