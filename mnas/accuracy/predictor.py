"""The ``predictor`` evaluator: gradient-boosted trees on an architecture encoding.

:func:`encode` turns any :class:`~mnas.arch.Network` — a space sample, a
reference network, a NetAdapt-shrunk one with arbitrary widths — into a
fixed-length vector: per downsampling level (the blocks whose output is
2^L times smaller than the input image), the number of blocks, mean and max
kernel, mean expansion ratio, output width, squeeze-excite and h-swish
fractions; plus global parameters, multiply-adds, depth and head width.

:func:`fit` fits scikit-learn's ``GradientBoostingRegressor`` on (architecture,
top-1) pairs from any evaluator and reports Kendall τ on a held-out split. The
fitted model is saved as inspectable JSON (every tree's nodes, thresholds and
leaf values, the feature names and the fit report) and evaluated with numpy
alone, so a shipped model loads instantly and never unpickles anything.

``get_evaluator("predictor", space="v3_small")`` with no other option loads the
model shipped for that space from ``mnas/accuracy/models/<space>.json``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mnas.accuracy.base import Evaluator
from mnas.arch import Act, Bneck, Network
from mnas.errors import MnasError

MODELS_DIR = Path(__file__).resolve().parent / "models"
LEVELS = 6  # downsampling levels 0 (full resolution) .. 5 (1/32)
LEVEL_FEATURES = ("blocks", "kernel_mean", "kernel_max", "expand_mean", "width_log2", "se_frac", "hswish_frac")
GLOBAL_FEATURES = ("params_log10", "madds_log10", "depth", "head_log2", "stem_log2")
FEATURE_NAMES = tuple(f"l{lv}.{f}" for lv in range(LEVELS) for f in LEVEL_FEATURES) + GLOBAL_FEATURES
FORMAT = "mnas-gbt-1"


def encode(net: Network) -> np.ndarray:
    """The fixed-length feature vector of ``net`` (names in :data:`FEATURE_NAMES`)."""
    from mnas.counting import count

    per: list[list] = [[] for _ in range(LEVELS)]
    for layer in net.layers():
        if layer.index < 0:
            continue
        lv = min(LEVELS - 1, max(0, int(round(math.log2(net.resolution / layer.hout)))))
        per[lv].append(layer)
    x: list[float] = []
    for layers in per:
        if not layers:
            x += [0.0] * len(LEVEL_FEATURES)
            continue
        ks = [lay.block.kernel for lay in layers]
        ex = [(lay.block.exp / lay.cin) if isinstance(lay.block, Bneck) else 1.0 for lay in layers]
        se = [float(isinstance(lay.block, Bneck) and lay.block.se > 0) for lay in layers]
        hs = [float(lay.block.act is Act.HSWISH) for lay in layers]
        x += [len(layers), float(np.mean(ks)), float(max(ks)), float(np.mean(ex)), math.log2(layers[-1].cout),
              float(np.mean(se)), float(np.mean(hs))]
    c = count(net)
    x += [math.log10(c.params), math.log10(max(1, c.madds)), float(len(net.blocks)),
          math.log2(net.feature_channels), math.log2(net.stem.out)]
    return np.asarray(x, dtype=np.float64)


def encode_many(nets: Sequence[Network]) -> np.ndarray:
    return np.stack([encode(n) for n in nets]) if nets else np.zeros((0, len(FEATURE_NAMES)))


# --------------------------------------------------------------------------- the model as data


@dataclass
class TreeEnsemble:
    """Boosted regression trees as plain arrays: ``init + rate × Σ tree(x)``."""

    init: float
    rate: float
    trees: list[dict]  # {"left", "right", "feature", "threshold", "value"} (leaf: left == -1)
    feature_names: tuple[str, ...] = FEATURE_NAMES
    meta: dict = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        if X.shape[1] != len(self.feature_names):
            raise MnasError(f"predictor: {X.shape[1]} features given, the model expects {len(self.feature_names)}")
        out = np.full(len(X), self.init)
        rows = np.arange(len(X))
        for t in self.trees:
            left, right, feat, thr, val = t["_arrays"]
            node = np.zeros(len(X), dtype=np.int64)
            while True:
                inner = left[node] >= 0
                if not inner.any():
                    break
                go_left = X[rows, np.maximum(feat[node], 0)] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            out += self.rate * val[node]
        return out

    @classmethod
    def from_sklearn(cls, model, meta: dict | None = None) -> "TreeEnsemble":
        init = float(np.ravel(model.init_.constant_)[0])
        trees = []
        for est in model.estimators_[:, 0]:
            t = est.tree_
            trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                          "feature": t.feature.tolist(), "threshold": [float(v) for v in t.threshold],
                          "value": [float(v) for v in t.value[:, 0, 0]]})
        return cls(init, float(model.learning_rate), [_arrays(t) for t in trees], FEATURE_NAMES, meta or {}).check()

    def check(self) -> "TreeEnsemble":
        for t in self.trees:
            if "_arrays" not in t:
                _arrays(t)
        return self

    def to_dict(self) -> dict:
        trees = [{k: v for k, v in t.items() if k != "_arrays"} for t in self.trees]
        return {"format": FORMAT, "init": self.init, "rate": self.rate, "feature_names": list(self.feature_names),
                "meta": self.meta, "trees": trees}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TreeEnsemble":
        path = Path(path)
        if not path.is_file():
            raise MnasError(f"predictor model {path} not found (fit one with experiments/fit_predictor.py)")
        try:
            d = json.loads(path.read_text())
            if d.get("format") != FORMAT:
                raise ValueError(f"format {d.get('format')!r}, expected {FORMAT!r}")
            if tuple(d["feature_names"]) != FEATURE_NAMES:
                raise ValueError("its features differ from this version's encoding; refit it")
            trees = [_arrays(t) for t in d["trees"]]
            return cls(float(d["init"]), float(d["rate"]), trees, tuple(d["feature_names"]), d.get("meta", {}))
        except (ValueError, KeyError, TypeError) as e:
            raise MnasError(f"predictor model {path} is not a usable mnas model: {e}") from None


def _arrays(t: dict) -> dict:
    t["_arrays"] = (np.asarray(t["left"], dtype=np.int64), np.asarray(t["right"], dtype=np.int64),
                    np.asarray(t["feature"], dtype=np.int64), np.asarray(t["threshold"], dtype=np.float64),
                    np.asarray(t["value"], dtype=np.float64))
    return t


# --------------------------------------------------------------------------- fitting

GBT_PARAMS = {"n_estimators": 300, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8, "min_samples_leaf": 3}


def fit(nets: Sequence[Network], top1: Sequence[float], *, holdout: float = 0.25, seed: int = 0,
        meta: dict | None = None, **params: Any) -> tuple[TreeEnsemble, dict]:
    """Fit on ``(nets, top1)``; report held-out Kendall τ, then refit on everything.

    Returns the model (fitted on all pairs) and ``{"n", "n_holdout", "method",
    "kendall_tau", "spearman_rho", "mae"}`` measured on the held-out ``holdout``
    fraction by a model fitted on the rest (with fewer than 40 pairs, on 5-fold
    out-of-fold predictions instead: a 25 % split of a few pairs says nothing).
    """
    from scipy.stats import kendalltau, spearmanr
    from sklearn.ensemble import GradientBoostingRegressor

    X, y = encode_many(list(nets)), np.asarray(top1, dtype=np.float64)
    if len(y) < 8:
        raise MnasError(f"predictor: {len(y)} (architecture, accuracy) pairs are too few to fit (need >= 8)")
    p = {**GBT_PARAMS, **params, "random_state": seed}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    if len(y) >= 40:  # one held-out split
        nh = max(2, int(round(holdout * len(y))))
        folds = [order[:nh]]
        method = f"held-out {nh} of {len(y)}"
    else:  # too few pairs for one split to say anything: 5-fold out-of-fold predictions
        folds = [order[i::5] for i in range(5)]
        nh = len(y)
        method = f"5-fold cross-validation, out-of-fold predictions for all {len(y)}"
    test = np.concatenate(folds)
    pred = np.concatenate([GradientBoostingRegressor(**p).fit(X[np.setdiff1d(order, f)], y[np.setdiff1d(order, f)]).predict(X[f])
                           for f in folds])
    report = {"n": int(len(y)), "n_holdout": int(nh), "method": method,
              "kendall_tau": float(kendalltau(pred, y[test]).statistic),
              "spearman_rho": float(spearmanr(pred, y[test]).statistic), "mae": float(np.mean(np.abs(pred - y[test]))),
              "params": {k: v for k, v in p.items()}}
    full = GradientBoostingRegressor(**p).fit(X, y)
    return TreeEnsemble.from_sklearn(full, {**(meta or {}), "holdout": report}), report


# --------------------------------------------------------------------------- the evaluator


def shipped_model(space_name: str) -> Path:
    return MODELS_DIR / f"{space_name}.json"


class PredictorEvaluator(Evaluator):
    """Predicted top-1 from a fitted model; ``loss`` is nan (a predictor has none)."""

    name = "predictor"

    def __init__(self, space: Any = None, cache: str | Path | None = None, model: str | Path | None = None):
        super().__init__(space, cache)
        if model is None:
            if self.space is None:
                raise MnasError("predictor evaluator: give a search space (its shipped model is used) or model=PATH")
            model = shipped_model(self.space.name)
            if not model.is_file():
                have = ", ".join(p.stem for p in sorted(MODELS_DIR.glob("*.json"))) or "none"
                raise MnasError(f"predictor evaluator: no shipped model for space {self.space.name!r} (shipped: {have}); "
                                "fit one with experiments/fit_predictor.py and pass model=PATH")
        self.model_path = Path(model)
        self.model = TreeEnsemble.load(self.model_path)

    def config(self) -> dict:
        st = self.model_path.stat()
        return {"evaluator": self.name, "model": self.model_path.name, "size": st.st_size, "mtime": int(st.st_mtime)}

    def _evaluate(self, net: Network, sample: dict | None) -> dict:
        t0 = time.perf_counter()
        top1 = float(np.clip(self.model.predict(encode(net)[None])[0], 0.0, 100.0))
        return {"top1": top1, "loss": math.nan, "cost_s": time.perf_counter() - t0}

    def predict_many(self, nets: Sequence[Network]) -> np.ndarray:
        """Predictions for many networks at once (no caching)."""
        return np.clip(self.model.predict(encode_many(list(nets))), 0.0, 100.0)
