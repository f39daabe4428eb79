"""The ``table`` evaluator: NAS-Bench-Macro's measured CIFAR-10 accuracies, looked up.

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

from mnas.accuracy.base import Evaluator, config_digest
from mnas.arch import Act, Bneck, Conv, Network, make_divisible
from mnas.errors import MnasError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PATH = REPO.parent / "shared" / "data" / "nas_bench_macro" / "nas-bench-macro_cifar10.json"
STAGES = (2, 3, 3)  # searchable layers per stage
WIDTHS = (64, 128, 256)
STEM_OUT = 32

_TABLES: dict[str, dict] = {}


def default_path() -> Path:
    env = os.environ.get("MNAS_NASBENCH_MACRO")
    return Path(env) if env else DEFAULT_PATH


def load_table(path: str | Path | None = None) -> dict[str, dict]:
    """``{key: {"test_acc": [3 floats], "mean_acc", "std", "params", "flops"}}``, read once per path."""
    p = Path(path) if path else default_path()
    k = str(p)
    if k not in _TABLES:
        if not p.is_file():
            raise MnasError(
                f"NAS-Bench-Macro table {p} not found: pass path=/--table-path, or set MNAS_NASBENCH_MACRO to "
                "nas-bench-macro_cifar10.json (github.com/xiusu/NAS-Bench-Macro)"
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


class TableEvaluator(Evaluator):
    """Benchmark lookup: ``top1`` = the mean (or one seed's) CIFAR-10 test accuracy of NAS-Bench-Macro."""

    name = "table"

    def __init__(self, space: Any = None, cache: str | Path | None = None, path: str | Path | None = None, seed: int | None = None):
        super().__init__(space, cache)
        self.path = Path(path) if path else default_path()
        self.table = load_table(self.path)
        if seed is not None and seed not in (0, 1, 2):
            raise MnasError(f"table evaluator: seed must be 0, 1 or 2 (the benchmark's three runs), or None for the mean; got {seed!r}")
        self.seed = seed
        self._prefix = f"{self.name}:{config_digest(self.config())}:"

    def config(self) -> dict:
        return {"evaluator": self.name, "table": self.path.name, "seed": self.seed}

    def key(self, net: Network | None, sample: dict | None = None) -> str:
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
            raise MnasError("table evaluator: give a network, or a sample together with the nasbench_macro space")
        return net

    def cache_key(self, net: Network | None, sample: dict | None = None) -> str:
        return self._prefix + self.key(net, sample)

    def _evaluate(self, net: Network | None, sample: dict | None) -> dict:
        k = self.key(net, sample)
        row = self.table.get(k)
        if row is None:
            raise MnasError(f"table evaluator: {k} is not in {self.path}")
        top1 = row["mean_acc"] if self.seed is None else row["test_acc"][self.seed]
        return {"top1": float(top1), "loss": math.nan, "cost_s": 0.0, "key": k, "std": row.get("std"),
                "params": row.get("params"), "flops": row.get("flops")}
