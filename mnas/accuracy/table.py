"""The ``table`` evaluator: NAS-Bench-Macro's CIFAR-10 or Accel-NASBench's ImageNet accuracies, looked up.

Accel-NASBench (the ``anb`` space; CSV read by :mod:`mnas.anb`) is handled by
:class:`TableEvaluator` below; the rest of this docstring is NAS-Bench-Macro.

NAS-Bench-Macro (Su et al., CVPR 2021) trained all 3^8 = 6,561 networks of an
8-layer MobileNetV2-block space on CIFAR-10 with 3 seeds. Its key has one digit
per searchable layer: 0 = identity, 1 = MBConv expansion 3 kernel 3, 2 = MBConv
expansion 6 kernel 5 (the ``nasbench_macro`` search space encodes samples the
same way). The key comes from ``sample`` (via the space's ``encode_string``) or
from the :class:`~mnas.arch.Network` itself (:func:`macro_key`): identity layers
after a stage's first layer were moved to the end of the stage before training,
so a network maps to its canonical key (``1012…`` and ``1102…`` are one network).

The file is read once per process; a lookup is a dictionary access, for the
strategies benchmark that calls it hundreds of thousands of times.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mnas.accuracy.base import Evaluator, config_digest
from mnas.arch import Act, Bneck, Conv, Network, make_divisible
from mnas.errors import MnasError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PATH = REPO.parent / "shared" / "data" / "nas_bench_macro" / "nas-bench-macro_cifar10.json"  # developer fallback
STAGES = (2, 3, 3)  # searchable layers per stage
WIDTHS = (64, 128, 256)
STEM_OUT = 32

_TABLES: dict[str, dict] = {}


def default_path() -> Path:
    """``$MNAS_NASBENCH_MACRO``, else the data root's copy (``mnas data fetch nasbench_macro``), else ``../shared/data``'s."""
    env = os.environ.get("MNAS_NASBENCH_MACRO")
    if env:
        return Path(env)
    from mnas.data.registry import default_path as registry_path

    return registry_path("nasbench_macro")


def load_table(path: str | Path | None = None) -> dict[str, dict]:
    """``{key: {"test_acc": [3 floats], "mean_acc", "std", "params", "flops"}}``, read once per path."""
    p = Path(path) if path else default_path()
    k = str(p)
    if k not in _TABLES:
        if not p.is_file():
            raise MnasError(
                f"NAS-Bench-Macro table {p} not found: pass path=/--table-path, or set MNAS_NASBENCH_MACRO to "
                "nas-bench-macro_cifar10.json (github.com/xiusu/NAS-Bench-Macro), or get it with "
                "`mnas data fetch nasbench_macro`"
            )
        try:
            data = json.loads(p.read_text())
            if not isinstance(data, dict) or not all("mean_acc" in v and "test_acc" in v for v in data.values()):
                raise ValueError("entries lack mean_acc/test_acc")
        except (ValueError, AttributeError, TypeError) as e:
            raise MnasError(f"NAS-Bench-Macro table {p} is malformed ({e}): expected {{'02012100': {{'mean_acc', 'test_acc', ...}}}}") from None
        _TABLES[k] = data
    return _TABLES[k]


def canonical_key(key: str, stages: tuple[int, ...] = STAGES) -> str:
    """Move identity digits after each stage's first layer to the end of that stage."""
    out, i = [], 0
    for n in stages:
        first, rest = key[i], key[i + 1 : i + n]
        out.append(first + rest.replace("0", "") + "0" * rest.count("0"))
        i += n
    return "".join(out)


def macro_key(net: Network, stages: tuple[int, ...] = STAGES) -> str:
    """The canonical NAS-Bench-Macro key of ``net`` (an error names the first block that does not fit)."""
    if net.stem.out != STEM_OUT or net.stem.stride != 1 or net.stem.kernel != 3:
        from mnas.arch import format_block

        raise MnasError(f"not a NAS-Bench-Macro network: its stem must be stem_k3_c{STEM_OUT}_s1_re, got {format_block(net.stem, 'stem')}")
    groups: list[list] = []
    cin = net.stem.out
    for i, b in enumerate(net.blocks):
        if b.stride == 2:
            groups.append([])
        if not groups:
            raise MnasError(f"not a NAS-Bench-Macro network: block {i} comes before the first stride-2 layer")
        groups[-1].append((i, b, cin))
        cin = b.out
    if len(groups) != len(stages):
        raise MnasError(f"not a NAS-Bench-Macro network: {len(groups)} stride-2 stages, expected {len(stages)}")
    digits = []
    for s, (group, n, width) in enumerate(zip(groups, stages, WIDTHS)):
        if len(group) > n:
            raise MnasError(f"not a NAS-Bench-Macro network: stage {s + 1} has {len(group)} layers, at most {n}")
        for i, b, c in group:
            digits.append(_digit(i, b, c, width))
        digits += ["0"] * (n - len(group))
    return canonical_key("".join(digits), stages)


def _digit(i: int, b, cin: int, width: int) -> str:
    where = f"not a NAS-Bench-Macro network: block {i}"
    if b.out != width:
        raise MnasError(f"{where} has {b.out} output channels, expected {width}")
    if isinstance(b, Conv) and b.kernel == 1 and b.stride == 2 and b.act is Act.NONE:
        return "0"
    if isinstance(b, Bneck) and b.se == 0 and b.act is Act.RELU and b.skip:
        if b.kernel == 3 and b.exp == make_divisible(cin * 3, 8):
            return "1"
        if b.kernel == 5 and b.exp == make_divisible(cin * 6, 8):
            return "2"
    from mnas.arch import format_block

    raise MnasError(f"{where} ({format_block(b)}) is none of identity, MBConv e3 k3, MBConv e6 k5")


BENCHMARKS = ("nasbench_macro", "anb")


class TableEvaluator(Evaluator):
    """Benchmark lookup: NAS-Bench-Macro's CIFAR-10 accuracy, or Accel-NASBench's ImageNet ``val_top1``.

    The benchmark is ``benchmark=`` if given, else read from the table file's suffix
    (``.json`` NAS-Bench-Macro, ``.csv`` Accel-NASBench), else from the space
    (``anb`` or ``nasbench_macro``), else chosen per network (an ``anb``-shaped
    network — 32-channel stride-2 stem, seven blocks — reads Accel-NASBench).
    Accel-NASBench answers exactly for its 4,626 listed rows (the 10 networks it
    trained twice answer the mean of their two runs, ``runs: 2``); any other network
    of its space is an error that names the surrogate (``--evaluator anb``).
    """

    name = "table"

    def __init__(self, space: Any = None, cache: str | Path | None = None, path: str | Path | None = None,
                 seed: int | None = None, benchmark: str | None = None):
        super().__init__(space, cache)
        if benchmark is not None and benchmark not in BENCHMARKS:
            raise MnasError(f"table evaluator: benchmark must be one of {', '.join(BENCHMARKS)}, got {benchmark!r}")
        if benchmark is None and path is not None:
            benchmark = "anb" if Path(path).suffix.lower() == ".csv" else "nasbench_macro"
        if benchmark is None and self.space is not None:
            benchmark = "anb" if getattr(self.space, "name", "") == "anb" else "nasbench_macro"
        self.benchmark = benchmark  # None: per network
        self.user_path = Path(path) if path else None
        self.path = self.user_path or (default_path() if benchmark != "anb" else None)
        if seed is not None and seed not in (0, 1, 2):
            raise MnasError(f"table evaluator: seed must be 0, 1 or 2 (the benchmark's three runs), or None for the mean; got {seed!r}")
        if seed is not None and benchmark == "anb":
            raise MnasError("table evaluator: Accel-NASBench has one run per network: drop seed")
        self.seed = seed
        self._table: dict | None = None
        if benchmark == "nasbench_macro":
            self._table = load_table(self.path)
        elif benchmark == "anb":
            self.anb_data()
        self._prefix = f"{self.name}:{config_digest(self.config())}:"

    @property
    def table(self) -> dict:
        if self._table is None:
            self._table = load_table(self.user_path if self.benchmark == "nasbench_macro" else None)
        return self._table

    def anb_data(self):
        from mnas.anb import load_csv

        return load_csv(self.user_path if self.benchmark == "anb" else None)

    def config(self) -> dict:
        table = self.user_path.name if self.user_path else (self.path.name if self.path else None)
        cfg = {"evaluator": self.name, "table": table, "seed": self.seed}
        if self.benchmark != "nasbench_macro":
            cfg["benchmark"] = self.benchmark or "auto"
        return cfg

    def _is_anb(self, net: Network | None, sample: dict | None) -> bool:
        if self.benchmark is not None:
            return self.benchmark == "anb"
        if net is None:
            return getattr(self.space, "name", "") == "anb"
        from mnas.anb import BLOCKS, STEM_OUT

        return net.stem.stride == 2 and net.stem.out == STEM_OUT and len({b.out for b in net.blocks}) == BLOCKS

    def key(self, net: Network | None, sample: dict | None = None) -> str:
        if self._is_anb(net, sample):
            from mnas.anb import choices_of, format_code

            use_sample = sample is not None and (net is None or self.space is not None)
            return format_code(choices_of(sample if use_sample else net, self.space))
        if sample is not None and self.space is not None:
            code = self.space.encode_string(sample)
            if len(code) != sum(STAGES):
                raise MnasError(f"table evaluator: space {getattr(self.space, 'name', '?')} is not NAS-Bench-Macro's (code {code!r})")
            return canonical_key(code)
        if net is None:
            raise MnasError("table evaluator: give a network, or a sample together with the nasbench_macro space")
        return macro_key(net)

    def _prepare(self, net, sample):
        if net is None and (sample is None or self.space is None):
            raise MnasError("table evaluator: give a network, or a sample together with the nasbench_macro or anb space")
        return net

    def cache_key(self, net: Network | None, sample: dict | None = None) -> str:
        return self._prefix + self.key(net, sample)

    def _evaluate(self, net: Network | None, sample: dict | None) -> dict:
        k = self.key(net, sample)
        if "-" in k:
            return self._anb_results(np.array([_code_choices(k)]))[0]
        row = self.table.get(k)
        if row is None:
            raise MnasError(f"table evaluator: {k} is not in {self.path}")
        top1 = row["mean_acc"] if self.seed is None else row["test_acc"][self.seed]
        return {"top1": float(top1), "loss": math.nan, "cost_s": 0.0, "key": k, "std": row.get("std"),
                "params": row.get("params"), "flops": row.get("flops")}

    # -- Accel-NASBench, vectorised
    def _anb_results(self, choices) -> list[dict]:
        from mnas.anb import format_code

        data = self.anb_data()
        idx = data.lookup(choices)
        missing = np.flatnonzero(idx < 0)
        if len(missing):
            code = format_code(choices[missing[0]])
            more = f" (and {len(missing) - 1} more of {len(idx)})" if len(missing) > 1 else ""
            raise MnasError(f"table evaluator: {code}{more} is not among the {data.networks} networks Accel-NASBench trained "
                            f"({data.path}); its surrogate answers for every network of the space: --evaluator anb")
        top1 = data.network_values("val_top1")[idx]
        top5 = data.network_values("val_top5")[idx] if "val_top5" in data.columns else None
        macs, params, runs = data.network_values("macs_m")[idx], data.network_values("params_m")[idx], data.runs[idx]
        out = []
        for i, c in enumerate(choices):
            d = {"top1": float(top1[i]), "loss": math.nan, "cost_s": 0.0, "key": format_code(c),
                 "macs_m": float(macs[i]), "params_m": float(params[i]), "runs": int(runs[i])}
            if top5 is not None:
                d["top5"] = float(top5[i])
            out.append(d)
        return out

    def evaluate_many(self, nets, samples=None):
        """Vectorised for Accel-NASBench (one gather for all networks); per network otherwise or with a cache file."""
        samples = list(samples) if samples is not None else [None] * len(nets)
        nets = list(nets)
        if self.cache.path is not None or not nets or not all(self._is_anb(n, s) for n, s in zip(nets, samples)):
            return super().evaluate_many(nets, samples)
        from mnas.anb import choices_of

        use_sample = self.space is not None
        choices = np.stack([choices_of(s if n is None or (use_sample and s is not None) else n, self.space)
                            for n, s in zip(nets, samples)])
        results = self._anb_results(choices)
        for r in results:
            r.update(evaluator=self.name, cached=False)
        self.evaluations += len(results)
        return results


def _code_choices(code: str):
    from mnas.anb import parse_code

    return parse_code(code)
