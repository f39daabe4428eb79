"""The ``ofa`` evaluator: Once-for-All's ImageNet accuracy predictor for the sub-networks of its space.

OFA's authors (Cai et al., ICLR 2020, mit-han-lab/once-for-all, MIT) fitted an MLP on ~16K sub-networks
of their MobileNetV3 supernet ``ofa_mbv3_d234_e346_k357_w1.2`` whose ImageNet accuracy they measured
with inherited weights. It ships losslessly in ``mnas/accuracy/models/ofa_acc_predictor.json``
(converted by ``experiments/convert_ofa_predictor.py``, licence notice beside it) and runs with numpy::

    ev = get_evaluator("ofa", space="ofa")
    ev.evaluate(net)    # {"top1": 81.73, "extrapolated": False, "ks": [...], "e": [...], "d": [...], "r": 224, ...}

Encoding (exactly OFA's tutorial ``AccuracyPredictor.spec2feats``): 20 block slots (5 stages × 4),
one-hot kernel {3, 5, 7} per slot, then one-hot expansion {3, 4, 6} per slot, then 8 one-hot
resolution slots at ``(r - 112) // 16``; slots beyond a stage's depth stay zero. The output is top-1
on OFA's 10,000-image holdout of ImageNet *train* (it reads 3-5 pp above the official validation).

Any :class:`~mnas.arch.Network` that is a sub-network of the space (``search_spaces/ofa.yaml``) is
recognised from its blocks, whatever produced it (a sample, NetAdapt, a file); anything else is one
:class:`~mnas.errors.MnasError` line saying which block differs. Resolutions 112-159 px have slots
that never moved from their initialisation during OFA's training: they are scored and flagged
``extrapolated``; below 112 or from 240 px there is no slot (an error).

:meth:`OfaEvaluator.evaluate_many` encodes a batch and runs one matrix product per layer
(``benchmarks/bench_ofa_predictor.py``). For the encoding in OFA's own terms (its
``{"ks", "e", "d", "r"}`` dicts, as its evolution search mutates them) use :func:`arch_of`,
:func:`sample_of_arch` and :meth:`OfaPredictor.predict_arrays`.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import operator
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mnas.accuracy.base import Evaluator
from mnas.arch import Act, Bneck, Conv, Head, Network, make_divisible, se_channels
from mnas.errors import MnasError

MODEL_PATH = Path(__file__).resolve().parent / "models" / "ofa_acc_predictor.json"
FORMAT = "mnas-ofa-mlp-1"

# The supernet (w1.2): stem, fixed first block, five elastic stages (out width, stride, act, SE), head.
KERNELS = (3, 5, 7)
EXPANDS = (3, 4, 6)
DEPTHS = (2, 3, 4)
N_STAGES, MAX_DEPTH = 5, 4
N_SLOTS = N_STAGES * MAX_DEPTH
RES_SLOTS = 8  # resolution one-hots at (r - 112) // 16: 112..239 px
TRAINED_RES = (160, 239)  # the slots OFA's training moved (r 160-224, and what shares their slots)
STEM = Conv(out=24, kernel=3, stride=2, act=Act.HSWISH)
FIRST = Bneck(out=24, exp=24, kernel=3, stride=1, se=0, act=Act.RELU)
STAGES = (  # (out, stride, act, se)
    (32, 2, Act.RELU, False),
    (48, 2, Act.RELU, True),
    (96, 2, Act.HSWISH, False),
    (136, 1, Act.HSWISH, True),
    (192, 2, Act.HSWISH, True),
)
HEAD = Head(conv=1152, conv_act=Act.HSWISH, hidden=1536, hidden_act=Act.HSWISH)
N_FEATURES = 2 * 3 * N_SLOTS + RES_SLOTS  # 128
MIN_ROWS = 16  # smallest matrix handed to BLAS (see OfaPredictor.predict)
CHUNK = 2048  # rows per pass through the MLP


def _slot_blocks() -> list[tuple[dict, dict]]:
    """Per stage, {(out, exp, kernel, stride, se): (kernel index, expansion index)} of its first block
    and of the others (the activation is checked apart: ints hash fast, an enum does not)."""
    out, cin = [], FIRST.out
    for cout, stride, act, se in STAGES:
        pair = []
        for c, s in ((cin, stride), (cout, 1)):
            table = {}
            for ki, k in enumerate(KERNELS):
                for ei, e in enumerate(EXPANDS):
                    exp = make_divisible(round(c * e), 8)
                    table[(cout, exp, k, s, se_channels(exp) if se else 0)] = (ki, ei)
            pair.append(table)
        out.append((pair[0], pair[1]))
        cin = cout
    return out


_TABLES = _slot_blocks()


def _not_ofa(why: str) -> MnasError:
    return MnasError(f"ofa evaluator: not a sub-network of Once-for-All's MobileNetV3 w1.2 space ({why}); "
                     "its predictor scores only those (--space ofa)")


def _expected(stage: int, first: bool) -> str:
    cout, stride, act, se = STAGES[stage]
    exps = sorted({key[1] for key in _TABLES[stage][0 if first else 1]})
    return (f"stage s{stage + 1} {'first' if first else 'later'} blocks are ir k3/5/7, expanded {'/'.join(map(str, exps))}, "
            f"c{cout}, {'SE, ' if se else ''}{act.value}, s{stride if first else 1}")


def _check_frame(net: Network) -> None:
    if not isinstance(net, Network):
        raise MnasError(f"ofa evaluator: expected a Network, got {type(net).__name__}")
    if net.stem != STEM or net.in_channels != 3:
        from mnas.arch import format_block

        raise _not_ofa(f"stem {format_block(net.stem, 'stem')} on {net.in_channels} channels, OFA's is "
                       "stem_k3_c24_s2_hs on 3")
    h = net.head
    if (h.conv, h.conv_act, h.hidden, h.hidden_act) != (HEAD.conv, HEAD.conv_act, HEAD.hidden, HEAD.hidden_act):
        raise _not_ofa("head differs from OFA's head_c1152_hs_f1536_hs")
    if not net.blocks or net.blocks[0] != FIRST:
        raise _not_ofa("block 0 is not OFA's first block ir_k3_e24_c24_re_s1")


def encode_network(net: Network) -> tuple[list[int], list[int], list[int], int]:
    """``(kernel index per slot, expansion index per slot, depth per stage, resolution)`` of an OFA sub-net.

    Unused slots get index -1. Raises one :class:`MnasError` line naming what is not OFA's."""
    _check_frame(net)
    blocks = net.blocks
    ks = [-1] * N_SLOTS
    es = [-1] * N_SLOTS
    depth = [0] * N_STAGES
    i, n = 1, len(blocks)
    for s in range(N_STAGES):
        table = _TABLES[s][0]
        cout, _, act, _ = STAGES[s]
        j = 0
        while j < MAX_DEPTH and i < n:
            b = blocks[i]
            if j > 0 and b.out != cout:
                break
            hit = table.get((b.out, b.exp, b.kernel, b.stride, b.se)) if isinstance(b, Bneck) else None
            if hit is None or b.act is not act or not b.skip:  # type: ignore[union-attr]
                from mnas.arch import format_block

                raise _not_ofa(f"block {i} {format_block(b)}: {_expected(s, j == 0)}")
            ks[s * MAX_DEPTH + j], es[s * MAX_DEPTH + j] = hit
            table = _TABLES[s][1]
            i += 1
            j += 1
        if j < DEPTHS[0]:
            raise _not_ofa(f"stage s{s + 1} has {j} block(s), OFA's stages have 2, 3 or 4")
        depth[s] = j
    if i != n:
        raise _not_ofa(f"{n - i} block(s) after the fifth stage")
    return ks, es, depth, int(net.resolution)


def resolution_slot(r: int) -> int:
    """OFA's resolution one-hot index, ``(r - 112) // 16``; an error where it has none."""
    slot = (int(r) - 112) // 16
    if not 0 <= slot < RES_SLOTS:
        raise MnasError(f"ofa evaluator: resolution {r} px has no slot in OFA's predictor (112-239 px; trained "
                        "160-239), choose 160, 176, 192, 208 or 224")
    return slot


def extrapolation(r: int) -> str:
    """Why a resolution lies outside what OFA's predictor was trained on ('' if it does not)."""
    if r < TRAINED_RES[0]:
        return (f"resolution {r} px: OFA's predictor never trained its slot ({(r - 112) // 16}; trained "
                f"{TRAINED_RES[0]}-{TRAINED_RES[1]} px)")
    return ""


def features(ks: np.ndarray, es: np.ndarray, res: np.ndarray) -> np.ndarray:
    """OFA's 128-dimensional input for index arrays (N × 20 kernel and expansion indices, -1 = unused; N
    resolutions in px), exactly ``spec2feats``: 60 kernel one-hots, 60 expansion one-hots, 8 resolution."""
    ks, es = np.atleast_2d(ks), np.atleast_2d(es)
    res = np.atleast_1d(np.asarray(res))
    n = ks.shape[0]
    x = np.zeros((n, N_FEATURES), dtype=np.float32)
    rows, slots = np.nonzero(ks >= 0)
    x[rows, slots * 3 + ks[rows, slots]] = 1.0
    rows, slots = np.nonzero(es >= 0)
    x[rows, 60 + slots * 3 + es[rows, slots]] = 1.0
    x[np.arange(n), 120 + (res - 112) // 16] = 1.0
    return x


class OfaPredictor:
    """The MLP: ``predict(features) -> top-1 fraction`` in float32, as OFA's torch model computes it."""

    def __init__(self, weights: Sequence[tuple[np.ndarray, np.ndarray]], name: str, source: str):
        shapes = [(w.shape, b.shape) for w, b in weights]
        if shapes != [((400, 128), (400,)), ((400, 400), (400,)), ((400, 400), (400,)), ((1, 400), (1,))]:
            raise MnasError(f"{source}: layer shapes {shapes} are not OFA's predictor's 128-400-400-400-1")
        self.weights = [(np.ascontiguousarray(w.T, dtype=np.float32), b.astype(np.float32)) for w, b in weights]
        self.name, self.source = name, source

    @classmethod
    def load(cls, path: str | Path | None = None) -> "OfaPredictor":
        """The shipped JSON (default), another JSON written by the converter, or OFA's ``.pth`` (weights only)."""
        path = Path(path).expanduser() if path else MODEL_PATH
        if not path.is_file():
            raise MnasError(f"ofa predictor file {path} is missing; regenerate it with "
                            "python experiments/convert_ofa_predictor.py (after `mnas data fetch ofa_predictor`)")
        if path.suffix == ".pth":
            import torch

            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
                weights = [(sd[f"{i}.weight"].numpy(), sd[f"{i}.bias"].numpy()) for i in ("0", "2", "4", "6")]
            except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
                raise MnasError(f"{path} is not OFA's acc_predictor.pth state dict ({type(e).__name__}: {e})") from None
            return cls(weights, name="ofa-acc-predictor-mbv3-w1.2", source=str(path))
        try:
            data = json.loads(path.read_text())
            if data.get("format") != FORMAT:
                raise KeyError("format")
            weights = [(_array(layer["weight"]), _array(layer["bias"])) for layer in data["layers"]]
            name = str(data["name"])
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise MnasError(f"ofa predictor file {path} is corrupt or not {FORMAT} ({type(e).__name__}: {e}); "
                            "regenerate it with python experiments/convert_ofa_predictor.py") from None
        return cls(weights, name=name, source=str(path))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Top-1 fractions of feature rows ``x`` (N × 128), float32 as OFA's torch model.

        A row's value does not depend on the batch it comes in: BLAS sums a lone row (a matrix-vector
        product) in another order than a matrix's rows, so batches under :data:`MIN_ROWS` are padded.
        Rows go through in chunks of :data:`CHUNK` into reused buffers (fresh 30 MB temporaries cost
        more in page faults than the products)."""
        x = np.asarray(x, dtype=np.float32)
        n = len(x)
        out = np.empty(n, dtype=np.float32)
        (w0, b0), (w1, b1), (w2, b2), (w3, b3) = self.weights
        rows = min(CHUNK, max(n, MIN_ROWS))
        h0 = np.empty((rows, w0.shape[1]), dtype=np.float32)
        h1 = np.empty_like(h0)
        for lo in range(0, n, CHUNK):
            xc = x[lo:lo + CHUNK]
            m = len(xc)
            if m < MIN_ROWS:
                xc = np.concatenate([xc, np.zeros((MIN_ROWS - m, xc.shape[1]), dtype=np.float32)])
            k = len(xc)
            a, b = h0[:k], h1[:k]
            np.matmul(xc, w0, out=a)
            a += b0
            np.maximum(a, 0.0, out=a)
            np.matmul(a, w1, out=b)
            b += b1
            np.maximum(b, 0.0, out=b)
            np.matmul(b, w2, out=a)
            a += b2
            np.maximum(a, 0.0, out=a)
            out[lo:lo + m] = (a @ w3)[:m, 0] + b3[0]
        return out

    def predict_arrays(self, ks: Any, e: Any, d: Any, r: Any) -> np.ndarray:
        """Top-1 fractions from OFA's own terms: kernel sizes and expansion ratios (N × 20), depths
        (N × 5), resolutions (N): what ``AccuracyPredictor.predict_accuracy`` returns for them."""
        ks, e, d = np.atleast_2d(ks), np.atleast_2d(e), np.atleast_2d(d)
        r = np.atleast_1d(np.asarray(r, dtype=np.int64))
        used = np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]  # N × 5 × 4
        used = used.reshape(len(d), N_SLOTS)
        kmap = np.full(8, -1)
        kmap[list(KERNELS)] = range(3)
        emap = np.full(7, -1)
        emap[list(EXPANDS)] = range(3)
        ki = np.where(used, kmap[ks], -1)
        ei = np.where(used, emap[e], -1)
        return self.predict(features(ki, ei, r))


def _array(rec: Mapping[str, Any]) -> np.ndarray:
    a = np.frombuffer(base64.b64decode(rec["base64"]), dtype=np.dtype(rec["dtype"]))
    return a.reshape(tuple(rec["shape"]))


_MODELS: dict[str, OfaPredictor] = {}


def load_predictor(path: str | Path | None = None) -> OfaPredictor:
    key = str(Path(path).expanduser().resolve()) if path else str(MODEL_PATH)
    if key not in _MODELS:
        _MODELS[key] = OfaPredictor.load(path)
    return _MODELS[key]


# --------------------------------------------------------------------------- OFA's arch dicts


def arch_of(net: Network) -> dict:
    """OFA's ``{"ks": [20], "e": [20], "d": [5], "r": [r]}`` of a sub-network (unused slots: the values
    of the slot's last used block, as OFA's samples carry arbitrary values there; they change nothing)."""
    ki, ei, d, r = encode_network(net)
    ks = [KERNELS[k] if k >= 0 else 3 for k in ki]
    es = [EXPANDS[e] if e >= 0 else 3 for e in ei]
    return {"ks": ks, "e": es, "d": d, "r": [r]}


def sample_of_arch(arch: Mapping[str, Any]) -> dict:
    """The ``ofa`` space's sample of an OFA arch dict (``{"ks", "e", "d", "r" or "image_size"}``)."""
    try:
        ks, es, d = list(arch["ks"]), list(arch["e"]), list(arch["d"])
        r = arch["r"] if "r" in arch else arch["image_size"]
        r = int(r[0] if isinstance(r, (list, tuple)) else r)
    except (KeyError, TypeError, IndexError) as e:
        raise MnasError(f"OFA arch dict needs ks (20), e (20), d (5) and r: {e}") from None
    if len(ks) != N_SLOTS or len(es) != N_SLOTS or len(d) != N_STAGES:
        raise MnasError(f"OFA arch dict: ks and e need 20 values and d 5, got {len(ks)}, {len(es)}, {len(d)}")
    sample: dict[str, Any] = {"resolution": r}
    for s in range(N_STAGES):
        sample[f"s{s + 1}.layers"] = int(d[s])
        for j in range(MAX_DEPTH):
            sample[f"s{s + 1}.l{j + 1}.kernel"] = int(ks[s * MAX_DEPTH + j])
            sample[f"s{s + 1}.l{j + 1}.expand"] = int(es[s * MAX_DEPTH + j])
    return sample


# --------------------------------------------------------------------------- the evaluator


def sample_names() -> list[str]:
    """The ``ofa`` space's choice names in walk order (resolution, then per stage layers and per slot
    kernel, expansion)."""
    names = ["resolution"]
    for s in range(N_STAGES):
        names.append(f"s{s + 1}.layers")
        for j in range(MAX_DEPTH):
            names += [f"s{s + 1}.l{j + 1}.kernel", f"s{s + 1}.l{j + 1}.expand"]
    return names


_NAMES = sample_names()


def _is_ofa_space(space: Any) -> bool:
    """Whether ``space``'s samples are OFA arch choices under the names of :func:`sample_names` (so a
    batch can be encoded from its samples without reading the networks)."""
    if space is None or not hasattr(space, "choices"):
        return False
    try:
        choices = {c.name: tuple(c.options) for c in space.choices()}
        if set(choices) != set(_NAMES):
            return False
        ok = (all(o in KERNELS for n, opts in choices.items() if n.endswith(".kernel") for o in opts)
              and all(o in EXPANDS for n, opts in choices.items() if n.endswith(".expand") for o in opts)
              and all(o in DEPTHS for n, opts in choices.items() if n.endswith(".layers") for o in opts))
        if not ok:
            return False
        for which in ("min", "max"):  # the networks behind the names are OFA's
            sample = space.extreme(which)
            ki, ei, d, r = encode_network(space.decode(sample))
            k2, e2, r2, d2 = _encode_samples([sample])
            if ki != k2[0].tolist() or ei != e2[0].tolist() or r != int(r2[0]) or d != d2[0].tolist():
                return False
        return True
    except MnasError:
        return False


_KMAP = np.full(8, -1, dtype=np.int64)
_KMAP[list(KERNELS)] = range(3)
_EMAP = np.full(7, -1, dtype=np.int64)
_EMAP[list(EXPANDS)] = range(3)


def _encode_samples(samples: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kernel indices N × 20, expansion indices N × 20, resolutions N, depths N × 5) of ``ofa`` samples."""
    names = _NAMES
    get = operator.itemgetter(*names)  # one C call per sample, not 46 Python lookups
    v = np.fromiter(itertools.chain.from_iterable(map(get, samples)), dtype=np.int64,
                    count=len(samples) * len(names)).reshape(len(samples), len(names))
    res = v[:, 0]
    per_stage = v[:, 1:].reshape(len(samples), N_STAGES, 1 + 2 * MAX_DEPTH)
    depth = per_stage[:, :, 0]
    kv = per_stage[:, :, 1::2]
    ev = per_stage[:, :, 2::2]
    used = np.arange(MAX_DEPTH)[None, None, :] < depth[:, :, None]
    ks = np.where(used, _KMAP[kv], -1).reshape(len(samples), N_SLOTS)
    es = np.where(used, _EMAP[ev], -1).reshape(len(samples), N_SLOTS)
    return ks, es, res, depth


class OfaEvaluator(Evaluator):
    """OFA's predicted top-1 (percent, on its holdout of ImageNet train) of an OFA sub-network.

    Results carry ``model`` and ``extrapolated`` (with ``extrapolated_why``). ``model``: the shipped
    JSON (default), or a path to another JSON or to OFA's ``acc_predictor.pth`` (read weights-only).
    """

    name = "ofa"

    def __init__(self, space: Any = None, cache: str | Path | None = None, model: str | Path | None = None):
        super().__init__(space=space, cache=cache)
        self.model_path = Path(model).expanduser() if model else None
        self.predictor = load_predictor(self.model_path)
        self._from_samples = _is_ofa_space(self.space)

    def config(self) -> dict:
        return {"evaluator": self.name, "model": self.predictor.name}

    def _result(self, top1: float, why: str) -> dict:
        out = {"top1": 100.0 * top1, "loss": math.nan, "model": self.predictor.name, "extrapolated": bool(why)}
        if why:
            out["extrapolated_why"] = why
        return out

    def _evaluate(self, net: Network, sample: dict | None) -> dict:
        ks, es, depth, r = encode_network(net)
        resolution_slot(r)
        top1 = float(self.predictor.predict(features(np.array([ks]), np.array([es]), np.array([r])))[0])
        return self._result(top1, extrapolation(r))

    def _encode_batch(self, nets: Sequence[Network], samples: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._from_samples and all(s is not None for s in samples):
            ks, es, res, _ = _encode_samples(samples)
            if (ks.min(initial=0) >= -1 and es.min(initial=0) >= -1 and not ((ks < 0) & (es >= 0)).any()
                    and ((res >= 112) & (res < 240)).all()):
                return ks, es, res
        enc = [encode_network(n) for n in nets]
        ks = np.array([e[0] for e in enc], dtype=np.int64).reshape(len(nets), N_SLOTS)
        es = np.array([e[1] for e in enc], dtype=np.int64).reshape(len(nets), N_SLOTS)
        res = np.array([e[3] for e in enc], dtype=np.int64)
        for r in set(res.tolist()):
            resolution_slot(r)
        return ks, es, res

    def evaluate_many(self, nets, samples=None) -> list[Any]:
        """``evaluate`` for a batch, in one matrix product per layer (the same numbers, bit for bit).

        Samples of the ``ofa`` space (the search's path) are encoded without reading the networks.
        With an SQLite cache file, cached networks are served from it and the rest stored; without
        one the batch is computed directly (the MLP is cheaper than forming cache keys)."""
        samples = list(samples) if samples is not None else [None] * len(nets)
        if self.cache.path is not None:
            return super().evaluate_many(nets, samples)
        nets = [n if isinstance(n, Network) else self._prepare(n, s) for n, s in zip(nets, samples)]
        t0 = time.perf_counter()
        ks, es, res = self._encode_batch(nets, samples)
        top1 = (self.predictor.predict(features(ks, es, res)).astype(np.float64) * 100.0).tolist()
        cost = (time.perf_counter() - t0) / max(1, len(nets))
        self.evaluations += len(nets)
        name = self.predictor.name
        whys = {r: extrapolation(r) for r in set(res.tolist())}
        out = []
        for t, r in zip(top1, res.tolist()):
            why = whys[r]
            d = {"top1": t, "loss": math.nan, "model": name, "extrapolated": bool(why), "cost_s": cost,
                 "evaluator": "ofa", "cached": False}
            if why:
                d["extrapolated_why"] = why
            out.append(d)
        return out
