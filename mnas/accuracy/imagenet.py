"""The ``imagenet`` evaluator: an estimate of full-training ImageNet top-1 for MobileNet-family networks.

It is a linear model, stored as JSON in ``mnas/accuracy/models/imagenet.json``
and evaluated with numpy, over a few features every :class:`~mnas.arch.Network`
has (see :data:`FEATURES`):

* capacity: log2 multiply-adds, log2 parameters, log2 resolution (and the
  square of log2 multiply-adds, for the saturation of accuracy with size);
* how the network spends that capacity: mean depthwise kernel, squeeze-excite
  and smooth-activation (h-swish / swish) fractions, number of blocks;
* where it spends it: per block slot (stage by output stride and order, position
  in the stage), whether a block is there, its kernel and its log expansion.

Learned from what is real (``experiments/fit_imagenet_estimate.py`` regenerates
the file byte for byte): the published ImageNet top-1 of the networks mnas
defines (``mnas/accuracy/published/imagenet_top1.csv``: MobileNetV1/V2/V3,
MnasNet-A1/B1, EfficientNet-B0, at their published widths and resolutions) and
Accel-NASBench's 4,626 networks of the MnasNet space trained on ImageNet with a
16-epoch proxy. The benchmark fixes the capacity terms' training recipe but
varies kernel, expansion, depth and squeeze-excite per block, so the block
coefficients come from it, scaled by one fitted factor (16-epoch effects →
full-training effects, stored as ``calibration``). Within one space the third
source speaks: Once-for-All's accuracy predictor (``mnas.accuracy.ofa``, fitted by
its authors on ~16K measured sub-networks): the residual of its top-1 on random
sub-networks of the ``ofa`` space is fitted on the slot features and the
capacity terms, and that correction is part of the coefficients (one linear model
for every network; nothing recognises an ``ofa`` sub-net). The stored ``validation``
holds the measured leave-one-family-out error, which every result carries.

``evaluate_many`` scores a list of networks in one matrix product. Networks
far outside the fitted range (resolution, multiply-adds, parameters, a
feature beyond its fitted span, an expansion narrower than its input, regular
convolution blocks) are scored and flagged ``"extrapolated":
true`` with the reason, never refused; a network the features cannot describe,
or a missing or corrupt model file, is one :class:`~mnas.errors.MnasError`.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnas.accuracy.base import Evaluator
from mnas.arch import Act, Bneck, Conv, DepthSep, Network
from mnas.errors import MnasError

MODEL_PATH = Path(__file__).resolve().parent / "models" / "imagenet.json"
PUBLISHED_CSV = Path(__file__).resolve().parent / "published" / "imagenet_top1.csv"
FORMAT = "mnas-imagenet-linear-1"

FEATURES = (
    "log2_madds",  # log2(multiply-adds / 1e6)
    "log2_madds_sq",  # (log2_madds - 7)^2: accuracy saturates with size
    "log2_params",  # log2(parameters / 1e6)
    "log2_res",  # log2(resolution / 224)
    "kernel",  # mean (min(k, 5) - 3) / 2 over depthwise convolutions: 0 for 3x3, 1 for 5x5 and 7x7 (see KERNEL_CAP)
    "se",  # fraction of blocks with squeeze-excite
    "smooth_act",  # fraction of activations (stem, blocks, head) that are h-swish or swish
    "depth",  # number of blocks / 10
    # where the network spends its blocks, stage by stage: a stage is a run of depthwise blocks with one
    # output width; stages are placed by output stride (1/4 or larger, 1/8, 1/16, 1/32 or smaller) and
    # order within it (first, second; a third joins the second), blocks by position in the stage (1-4; a
    # fifth and later join the fourth). Per slot: whether a block is there, its (k - 3) / 2 (uncapped:
    # 7x7 = 2) and its log2(expanded / input channels), averaged where several blocks share the slot.
    # Learned from Once-for-All's predictor (see experiments/fit_imagenet_estimate.py).
    *(f"slot{g}_{m}{j}_{f}" for g in (4, 8, 16, 32) for m in (1, 2) for j in (1, 2, 3, 4)
      for f in ("on", "kernel", "expand")),
)
STRIDE_GROUPS = (4, 8, 16, 32)
SLOT_STAGES, SLOT_BLOCKS = 2, 4
# The global `kernel` feature (Accel-NASBench's block term) credits a 7x7 as a 5x5 (no network in that
# data has a 7x7); the slot kernel features, learned on Once-for-All's 3/5/7 space, do not cap.
KERNEL_CAP = 5
# The block-choice features Accel-NASBench varies (its coefficients are learned there).
BLOCK_FEATURES = ("kernel", "se", "depth")


def _smooth(act: Act) -> bool:
    return act is Act.HSWISH or getattr(Act, "SWISH", None) is act


def features(net: Network) -> np.ndarray:
    """The feature vector of ``net`` (names in :data:`FEATURES`)."""
    from mnas.counting import count

    if not isinstance(net, Network):
        raise MnasError(f"imagenet evaluator: expected a Network, got {type(net).__name__}")
    if not net.blocks:
        raise MnasError("imagenet evaluator: the network has no blocks; the estimate describes MobileNet-family "
                        "networks (a stem, depthwise blocks, a head)")
    c = count(net, num_classes=1000)
    kernels, se, acts = [], [], [_smooth(net.stem.act)]
    depthwise = 0
    runs: list[tuple[int, int, list[tuple[float, float]]]] = []  # (stride group, width, blocks)
    for layer in net.layers():
        b = layer.block
        if layer.index < 0:
            continue
        if isinstance(b, (Bneck, DepthSep)):
            ratio = b.exp / layer.cin if isinstance(b, Bneck) else 1.0
            stride = net.resolution / layer.hout
            g = next((s for s in STRIDE_GROUPS if stride <= s * 1.5), STRIDE_GROUPS[-1])
            item = ((b.kernel - 3) / 2, math.log2(ratio))
            if runs and runs[-1][0] == g and runs[-1][1] == b.out:
                runs[-1][2].append(item)
            else:
                runs.append((g, b.out, [item]))
        if isinstance(b, Bneck):
            depthwise += 1
            kernels.append((min(b.kernel, KERNEL_CAP) - 3) / 2)
            se.append(b.se > 0)
            acts.append(_smooth(b.act))
        elif isinstance(b, DepthSep):
            depthwise += 1
            kernels.append((min(b.kernel, KERNEL_CAP) - 3) / 2)
            se.append(False)
            acts.append(_smooth(b.act))
        elif isinstance(b, Conv):
            se.append(False)
            acts.append(_smooth(b.act))
    if depthwise == 0:
        raise MnasError("imagenet evaluator: the network has no depthwise (ir_ or ds_) block; the estimate only "
                        "describes MobileNet-family networks")
    if net.head.conv:
        acts.append(_smooth(net.head.conv_act))
    if net.head.hidden:
        acts.append(_smooth(net.head.hidden_act))
    lm = math.log2(max(c.madds, 1) / 1e6)
    return np.array([
        lm,
        (lm - 7.0) ** 2,
        math.log2(c.params / 1e6),
        math.log2(net.resolution / 224),
        float(np.mean(kernels)) if kernels else 0.0,
        float(np.mean(se)),
        float(np.mean(acts)),
        len(net.blocks) / 10,
        *_slots(runs),
    ], dtype=np.float64)


def _slots(runs: list[tuple[int, int, list[tuple[float, float]]]]) -> list[float]:
    """The slot features (``slot{g}_{m}{j}_*`` in :data:`FEATURES` order) of a network's stages."""
    cells: dict[tuple[int, int, int], list[tuple[float, float]]] = {}
    order: dict[int, int] = {}
    for g, _, blocks in runs:
        m = min(order.get(g, 0), SLOT_STAGES - 1)
        order[g] = order.get(g, 0) + 1
        for j, item in enumerate(blocks):
            cells.setdefault((g, m, min(j, SLOT_BLOCKS - 1)), []).append(item)
    out: list[float] = []
    for g in STRIDE_GROUPS:
        for m in range(SLOT_STAGES):
            for j in range(SLOT_BLOCKS):
                c = cells.get((g, m, j))
                out += [1.0, float(np.mean([k for k, _ in c])), float(np.mean([e for _, e in c]))] if c else [0.0] * 3
    return out


def features_many(nets: Sequence[Network]) -> np.ndarray:
    if not len(nets):
        return np.zeros((0, len(FEATURES)))
    return np.stack([features(n) for n in nets])


# --------------------------------------------------------------------------- published networks


def published_network(model: str, width: float, resolution: int) -> Network:
    """The mnas network of a row of ``imagenet_top1.csv`` (``model`` names a zoo factory)."""
    from mnas import zoo

    w = float(width)
    factories = {
        "mobilenet_v3_large": lambda: zoo.mobilenet_v3(zoo.V3_LARGE, 960, 1280, w),
        "mobilenet_v3_small": lambda: zoo.mobilenet_v3(zoo.V3_SMALL, 576, 1024, w),
        "mobilenet_v3_large_minimalistic": lambda: zoo.mobilenet_v3(zoo.V3_LARGE, 960, 1280, w, minimal=True),
        "mobilenet_v3_small_minimalistic": lambda: zoo.mobilenet_v3(zoo.V3_SMALL, 576, 1024, w, minimal=True),
        "mobilenet_v2": lambda: zoo.mobilenet_v2(w),
        "mobilenet_v1": lambda: zoo.mobilenet_v1(w),
        "mnasnet_a1": lambda: zoo.mnasnet_a1(w),
        "mnasnet_b1": lambda: zoo.mnasnet_b1(w),
        "efficientnet_b0": lambda: efficientnet_b0() if w == 1.0 else None,
    }
    if model not in factories:
        raise MnasError(f"published network {model!r} is not defined by mnas (known: {', '.join(factories)})")
    net = factories[model]()
    if net is None:
        raise MnasError(f"published network {model} has no width {width:g} in mnas")
    return net.with_resolution(int(resolution))


def efficientnet_b0() -> Network | None:
    """EfficientNet-B0 (swish, SE 1/4 of each block's input), or None while mnas has no swish."""
    swish = getattr(Act, "SWISH", None)
    if swish is None:
        return None
    return anb_network([(1, 3, 1, 1), (6, 3, 2, 1), (6, 5, 2, 1), (6, 3, 3, 1), (6, 5, 3, 1), (6, 5, 4, 1), (6, 3, 1, 1)])


# Accel-NASBench's backbone (EfficientNet-B0's): per block stride, input and output channels.
ANB_STRIDES = (1, 2, 2, 2, 1, 2, 1)
ANB_IN = (32, 16, 24, 40, 80, 112, 192)
ANB_OUT = (16, 24, 40, 80, 112, 192, 320)


def anb_network(blocks: Sequence[tuple[int, int, int, int]]) -> Network:
    """A network of Accel-NASBench's MnasNet space from per-block (expansion, kernel, layers, SE).

    The backbone of the benchmark's ``searchspaces.py``: a 32-channel 3×3 stride-2 stem, seven
    blocks (strides and widths in :data:`ANB_STRIDES`, :data:`ANB_IN`, :data:`ANB_OUT`), squeeze-excite
    of width int(0.25 × the layer's input), swish (h-swish while mnas has no swish: the features and
    counts do not depend on which), a 1×1 head to 1280.
    """
    from mnas.arch import Head

    act = getattr(Act, "SWISH", Act.HSWISH)
    layers = []
    for i, (e, k, n, se) in enumerate(blocks):
        cin = ANB_IN[i]
        for j in range(int(n)):
            layers.append(Bneck(out=ANB_OUT[i], exp=cin * int(e), kernel=int(k), stride=ANB_STRIDES[i] if j == 0 else 1,
                                se=int(0.25 * cin) if se else 0, act=act))
            cin = ANB_OUT[i]
    return Network(stem=Conv(out=32, kernel=3, stride=2, act=act), blocks=tuple(layers),
                   head=Head(conv=1280, conv_act=act, dropout=0.2))


def load_published(path: str | Path | None = None) -> list[dict]:
    """Rows of the published-top-1 CSV with their mnas networks (rows mnas cannot build are left out)."""
    import csv

    path = Path(path) if path else PUBLISHED_CSV
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(line for line in f if not line.startswith("#")):
            net = None
            try:
                net = published_network(r["model"], float(r["width"]), int(r["resolution"]))
            except MnasError:
                net = None
            if net is None:
                continue
            rows.append({**r, "width": float(r["width"]), "resolution": int(r["resolution"]), "top1": float(r["top1"]),
                         "net": net})
    return rows


# --------------------------------------------------------------------------- the model as data


def shape_flags(net: Network) -> str:
    """Why ``net`` has a shape none of the fitted networks has ('' if none): an expansion narrower
    than its block's input (every fitted inverted residual expands by >= 1x), or regular
    convolutions as blocks (MnasNet's "conv" op; the fitted networks have them only as stems)."""
    narrow = [f"b{layer.index} expands {layer.cin} to {layer.block.exp}" for layer in net.layers()
              if isinstance(layer.block, Bneck) and layer.index >= 0 and layer.block.exp < layer.cin]
    convs = [i for i, b in enumerate(net.blocks) if isinstance(b, Conv)]
    why = []
    if narrow:
        more = f" and {len(narrow) - 2} more" if len(narrow) > 2 else ""
        why.append("expansion below the block's input (" + ", ".join(narrow[:2]) + more + ")")
    if convs:
        why.append(f"{len(convs)} regular-convolution block(s) (b{convs[0]}...): the fitted networks have none "
                   "past the stem")
    return "; ".join(why)


class ImagenetModel:
    """``top1 = intercept + coef · features`` with the fitted range and the measured error."""

    def __init__(self, data: dict, source: str = "model"):
        try:
            if data.get("format") != FORMAT:
                raise KeyError("format")
            names = tuple(data["features"])
            if names != FEATURES:
                raise MnasError(f"{source}: its features {list(names)} are not this mnas version's {list(FEATURES)}; "
                                "regenerate it with python experiments/fit_imagenet_estimate.py")
            self.coef = np.asarray([float(data["coef"][n]) for n in FEATURES], dtype=np.float64)
            self.intercept = float(data["intercept"])
            self.lo = np.asarray([float(data["range"][n][0]) for n in FEATURES])
            self.hi = np.asarray([float(data["range"][n][1]) for n in FEATURES])
            self.name = str(data["name"])
            self.validation = dict(data["validation"])
            self.margin = dict(data.get("margin", {}))
        except MnasError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MnasError(f"{source} is not an {FORMAT} model (bad or missing field {e}); regenerate it with "
                            "python experiments/fit_imagenet_estimate.py") from None
        self.data = data

    @classmethod
    def load(cls, path: str | Path | None = None) -> "ImagenetModel":
        path = Path(path) if path else MODEL_PATH
        if not path.is_file():
            raise MnasError(f"imagenet model file {path} is missing; regenerate it with "
                            "python experiments/fit_imagenet_estimate.py")
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MnasError(f"imagenet model file {path} is corrupt ({e}); regenerate it with "
                            "python experiments/fit_imagenet_estimate.py") from None
        if not isinstance(data, dict):
            raise MnasError(f"imagenet model file {path} is corrupt (not a JSON object); regenerate it with "
                            "python experiments/fit_imagenet_estimate.py")
        return cls(data, source=f"imagenet model file {path}")

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        return self.intercept + X @ self.coef

    def extrapolation(self, X: np.ndarray, resolutions: Sequence[int]) -> list[str]:
        """Per row, '' or why the row lies outside what the model was fitted on."""
        X = np.atleast_2d(X)
        span = self.hi - self.lo
        tol = float(self.margin.get("feature_span", 0.25))
        rlo, rhi = self.margin.get("resolution", [96, 256])
        out = []
        for x, r in zip(X, resolutions):
            why = []
            if not rlo <= r <= rhi:
                why.append(f"resolution {r} outside {rlo}-{rhi}")
            bad = (x < self.lo - tol * span) | (x > self.hi + tol * span)
            for i in np.flatnonzero(bad):
                name = FEATURES[i]
                if name == "log2_madds_sq" or (name == "log2_res" and why):
                    continue
                if name == "log2_madds":
                    why.append(f"{2 ** x[i]:.0f} M multiply-adds outside {2 ** self.lo[i]:.0f}-{2 ** self.hi[i]:.0f} M")
                elif name == "log2_params":
                    why.append(f"{2 ** x[i]:.2f} M parameters outside {2 ** self.lo[i]:.2f}-{2 ** self.hi[i]:.2f} M")
                else:
                    why.append(f"{name} {x[i]:.2f} outside {self.lo[i]:.2f}-{self.hi[i]:.2f}")
            out.append("; ".join(why))
        return out


_MODEL_CACHE: dict[str, ImagenetModel] = {}


def load_model(path: str | Path | None = None) -> ImagenetModel:
    key = str(Path(path).resolve()) if path else str(MODEL_PATH)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = ImagenetModel.load(path)
    return _MODEL_CACHE[key]


class ImagenetEvaluator(Evaluator):
    """Estimated full-training ImageNet top-1 (percent) of any MobileNet-family network, in microseconds.

    Every result carries the model's ``model`` name, its measured leave-one-family-out error
    (``mae_pp``, ``kendall_tau``) and ``extrapolated`` (with ``extrapolated_why``).
    """

    name = "imagenet"

    def __init__(self, space: Any = None, cache: str | Path | None = None, model: str | Path | None = None,
                 warn: bool = True):
        super().__init__(space=space, cache=cache)
        self.model_path = Path(model).expanduser() if model else None
        self.model = load_model(self.model_path)
        self.warn = warn
        self._warned = 0

    def config(self) -> dict:
        return {"evaluator": self.name, "model": self.model.name}

    def _result(self, top1: float, why: str) -> dict:
        v = self.model.validation
        r = {"top1": float(top1), "loss": math.nan, "model": self.model.name,
             "mae_pp": v.get("mae_pp"), "kendall_tau": v.get("kendall_tau"), "extrapolated": bool(why)}
        if why:
            r["extrapolated_why"] = why
        return r

    def _warn(self, net: Network, why: str) -> None:
        if self.warn and why and self._warned < 5:
            self._warned += 1
            print(f"warning: imagenet estimate extrapolated ({why}) for r{net.resolution} network; "
                  "treat its top-1 as a guess", file=sys.stderr)

    def _evaluate(self, net: Network, sample: dict | None) -> dict:
        x = features(net)[None, :]
        why = "; ".join(w for w in (self.model.extrapolation(x, [net.resolution])[0], shape_flags(net)) if w)
        self._warn(net, why)
        return self._result(float(self.model.predict(x)[0]), why)

    def evaluate_many(self, nets, samples=None) -> list[Any]:
        """All of ``nets`` (or ``samples`` decoded by the space): cached ones from the cache, the
        rest in one matrix product (and into the cache), in order."""
        import time

        samples = samples if samples is not None else [None] * len(nets)
        nets = [self._prepare(n, s) for n, s in zip(nets, samples)]
        keys = [self.cache_key(n) for n in nets]
        out: list[Any] = [self.cache.get(k) for k in keys]
        todo = [i for i, r in enumerate(out) if r is None]
        self.cache_hits += len(nets) - len(todo)
        for r in out:
            if r is not None:
                r["cached"] = True
        if todo:
            t0 = time.perf_counter()
            fresh = [nets[i] for i in todo]
            X = features_many(fresh)
            top1 = self.model.predict(X)
            whys = ["; ".join(w for w in (why, shape_flags(n)) if w)
                    for why, n in zip(self.model.extrapolation(X, [n.resolution for n in fresh]), fresh)]
            cost = (time.perf_counter() - t0) / len(todo)
            for i, net, t, why in zip(todo, fresh, top1, whys):
                self._warn(net, why)
                r = self._result(float(t), why)
                r.update(cost_s=cost, evaluator=self.name)
                self.cache.put(keys[i], r, **({"evaluator": self.name, "config": json.dumps(self.config(), sort_keys=True),
                                               "arch": str(net)} if self.cache.path is not None else {}))
                out[i] = {**r, "cached": False}
            self.evaluations += len(todo)
        return out
