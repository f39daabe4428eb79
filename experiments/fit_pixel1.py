"""Fit the Pixel-1 cost model to published whole-network latencies and Single-Path NAS's per-layer table.

No Pixel-1 phone is available, so each op's latency is modelled as a
non-negative combination of transparent features of the op (the list and the
reasons for each are in :mod:`mnas.latency.opmodel`): 1×1 multiply-adds and
weights, depthwise multiply-adds (k²), depthwise outputs (k-independent),
stride-2 depthwise inputs, full-conv (stem) multiply-adds, FC weights, SE
weights, activation traffic, h-swish/swish elements, SE and layer counts; plus
a per-network constant (stored as the table's correction ``b``, ``a = 1``).

Two sources, one set of weights, a scale factor per source:

- **published whole networks** (``latency_tables/published/pixel1.csv``,
  transcribed with citations): epoch ``F`` -> ``pixel1``, epoch ``M`` ->
  ``pixel1-2018``. A row is used when mnas.zoo registers its network (name,
  width) and the zoo's multiply-adds at 224 are within 2 % of the published
  figure; resolution variants are ``zoo.get(name).with_resolution(r)``. Rows
  left out are listed in the output. Residual: ``(x·w + c) / y - 1``.
- **Single-Path NAS's measured per-layer Pixel-1 table** (Stamoulis et al.
  2019, ``pixel1_runtime_model.json``, read from ``../shared/data``, never
  copied): the 20 searched MBConv layers × 4 choices (k3/k5 × e3/e6) of its
  MnasNet-style backbone, plus one aggregate row, the 19.6 ms its search code
  adds for stem, layer 0, layer 21, head conv, pooling and classifier (layer 21
  taken at k3 e6, MnasNet's choice). Layers 0 and 21 are not searched there (their
  cost is in the constant; layer 0's four values are repeats, layer 21's e3
  values are as slow as e6), so they are reported but not fitted. The era lies
  between the two epochs: the rows enter as ``x·w / m - u`` with a free
  ``u = 1/scale`` (so the fit stays linear: NNLS over ``[w, c, u]``), weighted by
  ``SP_WEIGHT`` (the aggregate row by ``SP_AGGREGATE_WEIGHT``).

The weights trade the two sources off; the chosen ``SP_WEIGHT`` and
``SP_AGGREGATE_WEIGHT`` keep the whole-network leave-one-out MAPE within 4 %
while the per-layer Kendall τ stays above 0.9 (``--sweep`` prints the trade-off).

Eras: each published source timed the phone with its own TFLite build. Each table's header gets ``eras``, one
factor per source (:data:`ERA_SOURCES`, plus ``singlepath``: seeded networks of Single-Path NAS's space priced as
its search code prices them), the least-relative-squares scale from this model to the source's published ms;
``--device pixel1@table3`` uses it (:mod:`mnas.latency.pixel1_era`). Leave-one-out per source:
``experiments/pixel1_eras.py``.

The table lists every op of the zoo networks at resolutions 96–256 and of the
default search spaces (v3_small, v3_large, mnasnet at 224; nasbench_macro at 32
with 10 and 1000 classes), so it is used exactly like a measured table; other
ops (NetAdapt's widths, the ``anb`` space) are priced by the header's model.

    python experiments/fit_pixel1.py            # writes latency_tables/pixel1.csv, pixel1-2018.csv
    python experiments/fit_pixel1.py --out DIR  # elsewhere (the test runs it twice and compares bytes)
    python experiments/fit_pixel1.py --json     # the fit report (per network, per layer, k ratios)

Deterministic: no randomness, no clock; the output is byte-identical across runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnas import zoo  # noqa: E402
from mnas.arch import Network  # noqa: E402
from mnas.latency.keys import head_ops, head_ops_at, layer_key  # noqa: E402
from mnas.latency.table import Entry, LatencyTable  # noqa: E402

PUBLISHED = REPO / "latency_tables" / "published" / "pixel1.csv"
TABLE_RESOLUTIONS = (96, 128, 160, 192, 224, 256)
SPACES_224 = ("v3_small", "v3_large", "mnasnet")
MADDS_TOLERANCE = 0.02
DEVICES = {"F": ("pixel1", "Pixel-1 (MobileNetV3 paper's TFLite build, 2019)"),
           "M": ("pixel1-2018", "Pixel-1 (MnasNet-era TFLite build, 2018)")}


# --------------------------------------------------------------------------- features
# The feature functions live in the library (mnas.latency.opmodel) so the predictor can
# price ops a modelled table does not list with the same model.
from mnas.latency.opmodel import FEATURES, head_features, layer_features  # noqa: E402


def network_ops(net: Network, num_classes: int = 1000) -> list[tuple[str, np.ndarray]]:
    ops = [(layer_key(layer), layer_features(layer)) for layer in net.layers()]
    return ops + [(h.key, head_features(h)) for h in head_ops(net, num_classes)]


def network_features(net: Network) -> np.ndarray:
    return np.sum([f for _, f in network_ops(net)], axis=0)


# --------------------------------------------------------------------------- data

# The published sources, each an era of the phone (its TFLite build): name, what the `source` column says, title.
# A source is matched by all of its substrings; a row matching none is an error (a new source needs a name here).
ERA_SOURCES = (
    ("table9", ("MobileNetV3", "Table 9"), "MobileNetV3 paper (final arXiv), Appendix A Table 9"),
    ("table3", ("MobileNetV3", "Table 3"), "MobileNetV3 paper (final arXiv), Table 3"),
    ("slim-v3", ("slim", "MobileNetV3 table"), "TF-slim MobileNet README, MobileNetV3 table (minimalistic models)"),
    ("slim-v2", ("slim", "MobileNetV2 table"), "TF-slim MobileNet README, MobileNetV2 table (MnasNet era)"),
    ("mnasnet-readme", ("tensorflow/tpu", "mnasnet"), "TF-TPU MnasNet README (MnasNet era)"),
)
SINGLEPATH_ERA = ("singlepath", "Single-Path NAS per-layer Pixel-1 table (networks priced as its search code does)")
SP_NETWORKS = 100  # networks of Single-Path NAS's space priced from its per-layer table (its own era)
SP_SEED = 2019


def source_era(source: str) -> str:
    """The era name of a published row's ``source`` text (:data:`ERA_SOURCES`)."""
    for era, needles, _ in ERA_SOURCES:
        if all(n in source for n in needles):
            return era
    from mnas.errors import MnasError

    raise MnasError(f"{PUBLISHED}: source {source!r} is not one of the known eras; add it to ERA_SOURCES")


def published_rows(epoch: str, with_era: bool = False):
    """(label, Network, published ms[, era]) for usable rows, and (label, reason) for the others."""
    import pandas as pd

    df = pd.read_csv(PUBLISHED, comment="#")
    df = df[df["epoch"] == epoch]
    used, skipped = [], []
    for r in df.itertuples():
        name = r.model if r.width == 1.0 else f"{r.model}_{r.width:g}"
        label = f"{name}@{r.resolution}"
        if name not in zoo.names():
            skipped.append((label, "not defined in mnas.zoo"))
            continue
        ref = df[(df["model"] == r.model) & (df["width"] == r.width) & (df["resolution"] == 224)]
        from mnas.counting import count

        zoo_madds = count(zoo.get(name)).madds / 1e6
        pub = float(ref["madds_m"].iloc[0]) if len(ref) else float(r.madds_m)
        if abs(zoo_madds / pub - 1) > MADDS_TOLERANCE:
            skipped.append((label, f"zoo has {zoo_madds:.1f} M multiply-adds at 224, published {pub:g} M: "
                                   "not the same architecture"))
            continue
        row = (label, zoo.get(name).with_resolution(int(r.resolution)), float(r.pixel1_ms))
        used.append(row + (source_era(str(r.source)),) if with_era else row)
    return used, skipped


# --------------------------------------------------------------------------- Single-Path NAS's per-layer table

# choice -> (kernel, expansion ratio), from the Single-Path NAS code
SP_CHOICES = {"0": (3, 3), "1": (3, 6), "2": (5, 3), "3": (5, 6)}
# (cin, cout, first stride, input size) of the 5 searched stages of 4 layers each
SP_STAGES = ((16, 24, 2, 112), (24, 40, 2, 56), (40, 80, 2, 28), (80, 96, 1, 14), (96, 192, 2, 14))
SP_CONSTANT_MS = 19.6  # what the search code adds for stem, layers 0 and 21, head, pooling, classifier
SP_WEIGHT = 0.3  # weight of a per-layer row against a whole-network row
SP_AGGREGATE_WEIGHT = 0.1  # weight of the 19.6 ms aggregate row


def singlepath_path() -> Path:
    from mnas.data.registry import default_path  # the data root (`mnas data fetch pixel1_singlepath`), else ../shared/data

    return default_path("pixel1_singlepath")


def _sp_layer(idx: int, cin: int, cout: int, stride: int, h: int, kernel: int, ratio: int):
    from mnas.arch import Act, Bneck, Layer

    return Layer(idx, Bneck(out=cout, exp=cin * ratio, kernel=kernel, stride=stride, act=Act.RELU), cin, h, cout,
                 (h - 1) // stride + 1)


def singlepath_rows(path: Path):
    """[(label, layer index, kernel, ratio, Layer, measured ms)] for all 22 layers × 4 choices."""
    if not path.is_file():
        from mnas.errors import MnasError

        raise MnasError(f"{path}: Single-Path NAS's Pixel-1 table is absent; get it with "
                        "`mnas data fetch pixel1_singlepath` (or pass --single-path PATH)")
    data = json.loads(path.read_text())
    shapes = [(0, 32, 16, 1, 112, True)]
    for cin, cout, stride, h in SP_STAGES:
        for j in range(4):
            shapes.append((len(shapes), cin if j == 0 else cout, cout, stride if j == 0 else 1,
                           h if j == 0 else (h - 1) // stride + 1, False))
    shapes.append((21, 192, 320, 1, 7, False))
    rows = []
    for idx, cin, cout, stride, h, fixed in shapes:
        for choice in sorted(data[str(idx)]):
            k, e = (3, 1) if fixed else SP_CHOICES[choice]
            rows.append((f"layer{idx}/k{SP_CHOICES[choice][0]}e{SP_CHOICES[choice][1]}", idx, k, e,
                         _sp_layer(idx, cin, cout, stride, h, k, e), float(data[str(idx)][choice])))
    return rows


def singlepath_aggregate(rows) -> np.ndarray:
    """Features of what the 19.6 ms constant covers: stem, layer 0, layer 21 (k3 e6), head, pool, classifier."""
    from mnas.arch import Act, Conv, Head, Layer

    f = layer_features(Layer(-1, Conv(out=32, kernel=3, stride=2, act=Act.RELU), 3, 224, 32, 112))
    f = f + next(layer_features(r[4]) for r in rows if r[1] == 0) + \
        next(layer_features(r[4]) for r in rows if r[1] == 21 and (r[2], r[3]) == (3, 6))
    for hop in head_ops_at(7, 320, Head(conv=1280, conv_act=Act.RELU), 1000):
        f = f + head_features(hop)
    return f


def singlepath_network(rows, choices) -> tuple[Network, float]:
    """A network of Single-Path NAS's space (``choices``: 20 keys of SP_CHOICES, layers 1-20) and its price there:
    the 19.6 ms constant plus the chosen layers' measured ms, as its search code sums them."""
    from mnas.arch import Act, Bneck, Conv, Head

    by = {(r[1], r[2], r[3]): r for r in rows}
    blocks = [Bneck(out=16, exp=32, kernel=3, stride=1, act=Act.RELU)]  # layer 0: expansion 1
    ms = SP_CONSTANT_MS
    for idx, c in enumerate(choices, start=1):
        k, e = SP_CHOICES[c]
        r = by[idx, k, e]
        blocks.append(r[4].block)
        ms += r[5]
    blocks.append(next(r[4].block for r in rows if r[1] == 21 and (r[2], r[3]) == (3, 6)))  # layer 21: k3 e6
    stem = Conv(out=32, kernel=3, stride=2, act=Act.RELU)
    return Network(stem=stem, blocks=tuple(blocks), head=Head(conv=1280, conv_act=Act.RELU, dropout=0.2)), ms


def singlepath_networks(rows, n: int = SP_NETWORKS, seed: int = SP_SEED):
    """(label, Network, ms) for ``n`` seeded random networks of Single-Path NAS's space."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        choices = [str(c) for c in rng.integers(0, 4, size=20)]
        net, ms = singlepath_network(rows, choices)
        out.append((f"singlepath#{i}:{''.join(choices)}", net, ms))
    return out


def era_rows(rows) -> dict[str, list]:
    """era -> [(label, Network, published ms)]: every usable published row by its source, then Single-Path's."""
    out: dict[str, list] = {era: [] for era, _, _ in ERA_SOURCES}
    for epoch in DEVICES:
        for label, net, ms, era in published_rows(epoch, with_era=True)[0]:
            out[era].append((label, net, ms))
    out[SINGLEPATH_ERA[0]] = singlepath_networks(rows)
    return out


def era_titles() -> dict[str, str]:
    return {**{e: t for e, _, t in ERA_SOURCES}, SINGLEPATH_ERA[0]: SINGLEPATH_ERA[1]}


def era_factors(w: np.ndarray, by_era: dict[str, list]) -> dict[str, dict]:
    """The table header's ``eras``: per source, the factor taking this model's predictions to its published ms."""
    from mnas.latency.pixel1_era import era_factor

    titles, out = era_titles(), {}
    for era, items in by_era.items():
        if not items:
            continue
        p = predict(w, np.array([network_features(n) for _, n, _ in items]))
        out[era] = {"factor": float(f"{era_factor(p, [ms for _, _, ms in items]):.6g}"), "networks": len(items),
                    "source": titles[era]}
    return out


# --------------------------------------------------------------------------- fit

def fit(X: np.ndarray, y: np.ndarray, S: np.ndarray | None = None, m: np.ndarray | None = None,
        sw: np.ndarray | None = None) -> np.ndarray:
    """NNLS: minimise sum(((X w + c) / y - 1)^2) + sum(sw * (S w / m - u)^2) over w, c, u >= 0.

    Returns [w..., c, u]; ``1/u`` is the per-layer source's scale (its ms per model ms).
    Without ``S`` it is the whole-network fit alone (u = 0).
    """
    from scipy.optimize import nnls

    n = len(FEATURES)
    A = np.hstack([X, np.ones((len(X), 1)), np.zeros((len(X), 1))]) / y[:, None]
    rhs = np.ones(len(y))
    if S is not None and len(S):
        B = np.hstack([S / m[:, None], np.zeros((len(S), 1)), -np.ones((len(S), 1))]) * np.sqrt(sw)[:, None]
        A, rhs = np.vstack([A, B]), np.concatenate([rhs, np.zeros(len(S))])
    norm = np.linalg.norm(A, axis=0)
    norm[norm == 0] = 1.0
    w, _ = nnls(A / norm, rhs, maxiter=20_000)
    w = w / norm
    assert len(w) == n + 2
    return w


def predict(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    return X @ w[:-2] + w[-2]


def leave_one_out(X: np.ndarray, y: np.ndarray, *sp) -> np.ndarray:
    """Each published network predicted by a fit without it (the per-layer rows always in)."""
    out = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        out[i] = predict(fit(X[keep], y[keep], *sp), X[i:i + 1])[0]
    return out


def singlepath_block(rows, sp_weight: float = SP_WEIGHT, agg_weight: float = SP_AGGREGATE_WEIGHT):
    """(S, m, sw) of the fitted per-layer rows (searched layers 1–20) and the aggregate row."""
    fitted = [r for r in rows if 1 <= r[1] <= 20]
    S = np.array([layer_features(r[4]) for r in fitted] + [singlepath_aggregate(rows)])
    m = np.array([r[5] for r in fitted] + [SP_CONSTANT_MS])
    sw = np.array([sp_weight] * len(fitted) + [agg_weight])
    return S, m, sw


def madds_line(used, rows) -> dict:
    """The trivial baseline measured the same way: latency = a * multiply-adds + b (least relative squares)."""
    from scipy.stats import kendalltau

    from mnas.counting import count

    madds = np.array([count(n).madds / 1e6 for _, n, _ in used])
    y = np.array([ms for _, _, ms in used])
    loo = np.empty(len(y))
    for i in range(len(y)):
        k = np.arange(len(y)) != i
        a, b = np.linalg.lstsq(np.stack([madds[k], np.ones(k.sum())], 1) / y[k, None], np.ones(k.sum()), rcond=None)[0]
        loo[i] = a * madds[i] + b
    sel = [r for r in rows if 1 <= r[1] <= 20]
    lm = np.array([sum(layer_features(r[4])[[FEATURES.index("pw_madds"), FEATURES.index("dw_madds"),
                                            FEATURES.index("conv_madds")]]) for r in sel])
    meas = np.array([r[5] for r in sel])
    scale = np.exp(np.median(np.log(meas / lm)))
    return {"loo_mape_pct": round(float(np.mean(np.abs(loo - y) / y) * 100), 2),
            "singlepath_searched_kendall_tau": round(float(kendalltau(lm, meas).statistic), 4),
            "singlepath_searched_scaled_mape_pct": round(float(np.mean(np.abs(lm * scale - meas) / meas) * 100), 2)}


def singlepath_report(w: np.ndarray, rows) -> dict:
    """Kendall τ and scaled MAPE of the model on the per-layer table; k5/k3 (and the model's k7/k3) ratios."""
    from scipy.stats import kendalltau

    scale = 1.0 / w[-1] if w[-1] > 0 else float("nan")
    model = np.array([layer_features(r[4]) @ w[:-2] for r in rows])
    meas = np.array([r[5] for r in rows])
    searched = np.array([1 <= r[1] <= 20 for r in rows])

    def stats(sel):
        return {"kendall_tau": round(float(kendalltau(model[sel], meas[sel]).statistic), 4),
                "scaled_mape_pct": round(float(np.mean(np.abs(model[sel] * scale - meas[sel]) / meas[sel]) * 100), 2),
                "rows": int(sel.sum())}

    ratios = {}
    for e in (3, 6):
        k5m, k5p, k7p = [], [], []
        for idx in range(1, 21):
            r3 = next(r for r in rows if r[1] == idx and r[2] == 3 and r[3] == e)
            r5 = next(r for r in rows if r[1] == idx and r[2] == 5 and r[3] == e)
            p3 = layer_features(r3[4]) @ w[:-2]
            k5m.append(r5[5] / r3[5])
            k5p.append(layer_features(r5[4]) @ w[:-2] / p3)
            la = r3[4]
            k7 = _sp_layer(idx, la.cin, la.cout, la.block.stride, la.hin, 7, e)
            k7p.append(layer_features(k7) @ w[:-2] / p3)
        ratios[f"e{e}"] = {"k5_k3_measured": round(float(np.mean(k5m)), 4), "k5_k3_model": round(float(np.mean(k5p)), 4),
                           "k7_k3_model": round(float(np.mean(k7p)), 4)}
    from mnas.arch import Act, Conv, Layer

    stem = layer_features(Layer(-1, Conv(out=32, kernel=3, stride=2, act=Act.RELU), 3, 224, 32, 112)) @ w[:-2]
    fc = head_features(head_ops_at(1, 1280, __import__("mnas.arch", fromlist=["Head"]).Head(), 1000)[-1]) @ w[:-2]
    return {
        "scale": round(float(scale), 4),
        "searched_layers": stats(searched),
        "all_layers": stats(np.ones(len(rows), dtype=bool)),
        "layer_cost_ratios": ratios,
        "stem_224_to_112x32_ms": round(float(stem), 3),
        "stem_224_to_112x32_ms_singlepath_scale": round(float(stem * scale), 3),
        "classifier_1280_to_1000_ms": round(float(fc), 3),
        "aggregate_19p6_model_ms": round(float(singlepath_aggregate(rows) @ w[:-2] * scale), 2),
    }


# --------------------------------------------------------------------------- the table

def table_ops() -> dict[str, np.ndarray]:
    """key -> features for every op of the zoo (96–256) and of the default spaces."""
    from mnas.space import load_space

    ops: dict[str, np.ndarray] = {}
    for name in zoo.names():
        for r in TABLE_RESOLUTIONS:
            for k, f in network_ops(zoo.get(name).with_resolution(r)):
                ops.setdefault(k, f)
    for sname, res, classes in [(s, 224, (1000,)) for s in SPACES_224] + [("nasbench_macro", 32, (10, 1000))]:
        sp = load_space(sname)
        for layer in sp.distinct_layers([res]):
            ops.setdefault(layer_key(layer), layer_features(layer))
        for c, h in sp.head_inputs([res]):
            for n in classes:
                for hop in head_ops_at(h, c, sp.head, n):
                    ops.setdefault(hop.key, head_features(hop))
    return ops


def build_table(epoch: str, w: np.ndarray, ops: dict[str, np.ndarray], report: dict,
                eras: dict | None = None) -> LatencyTable:
    device, what = DEVICES[epoch]
    weights = {k: float(f"{v:.6g}") for k, v in zip(FEATURES, w[:-2])}
    meta = {
        "device": device,
        "engine": "TFLite float32 (modelled)",
        "threads": 1,
        "cpu": f"{what}, single big core (Snapdragon 821 Kryo); no phone measured: a fitted model",
        "kind": "modelled",
        "date": "published 2018-2019; model fitted by experiments/fit_pixel1.py",
        "method": ("per-op cost = non-negative weights x op features (NNLS on relative error) fitted to published "
                   f"whole-network Pixel-1 latencies, epoch {epoch}, and to Single-Path NAS's measured per-layer "
                   "Pixel-1 table with its own scale factor: see experiments/fit_pixel1.py"),
        "unit": "ms",
        "source": "latency_tables/published/pixel1.csv; ../shared/data/latency/pixel1_singlepath/pixel1_runtime_model.json",
        "feature_weights_ms": weights,
        "feature_units": "pw madds/params, dw madds/outputs/s2 inputs, conv madds, fc/se params, traffic, hswish "
                         "(h-swish and swish elements) in millions; se and layers are counts",
        "fit": report,
        "correction": {"a": 1.0, "b": float(f"{w[-2]:.6g}"), "n": report["networks"],
                       "note": "b = the fitted per-network constant"},
    }
    if eras:  # DEVICE@ERA (mnas/latency/pixel1_era.py): this model on one published source's scale
        meta["eras"] = eras
    entries = {k: Entry(float(f @ w[:-2]), 0.0, 0) for k, f in ops.items()}
    return LatencyTable(meta=meta, entries=entries)


def fit_epoch(epoch: str, rows, sp_weight: float = SP_WEIGHT, agg_weight: float = SP_AGGREGATE_WEIGHT):
    used, skipped = published_rows(epoch)
    X = np.array([network_features(n) for _, n, _ in used])
    y = np.array([ms for _, _, ms in used])
    sp = singlepath_block(rows, sp_weight, agg_weight)
    w = fit(X, y, *sp)
    loo = leave_one_out(X, y, *sp)
    return used, skipped, X, y, w, loo


def run(out_dir: Path, verbose: bool = True, singlepath: Path | None = None) -> dict:
    ops = table_ops()
    rows = singlepath_rows(singlepath or singlepath_path())
    by_era = era_rows(rows)
    summary = {}
    for epoch, (device, _) in DEVICES.items():
        used, skipped, X, y, w, loo = fit_epoch(epoch, rows)
        fitted = predict(w, X)
        rel = np.abs(loo - y) / y * 100
        sp = singlepath_report(w, rows)
        report = {
            "networks": len(used),
            "loo_mape_pct": round(float(rel.mean()), 2),
            "loo_max_error_pct": round(float(rel.max()), 2),
            "fit_mape_pct": round(float(np.mean(np.abs(fitted - y) / y) * 100), 2),
            "singlepath": sp,
            "madds_line": madds_line(used, rows),
            "used": [lbl for lbl, _, _ in used],
            "left_out": [f"{lbl}: {why}" for lbl, why in skipped],
        }
        eras = era_factors(w, by_era)
        table = build_table(epoch, w, ops, report, eras)
        table.save(out_dir / f"{device}.csv")
        per_net = [{"network": lbl, "published_ms": ms, "fit_ms": round(float(f), 2), "loo_ms": round(float(lo), 2)}
                   for (lbl, _, ms), f, lo in zip(used, fitted, loo)]
        per_layer = [{"layer": r[0], "measured_ms": r[5],
                      "model_ms_scaled": round(float(layer_features(r[4]) @ w[:-2] * sp["scale"]), 3),
                      "fitted": 1 <= r[1] <= 20} for r in rows]
        summary[device] = {**{k: v for k, v in report.items() if k not in ("used",)}, "per_network": per_net,
                           "per_layer": per_layer, "weights": table.meta["feature_weights_ms"],
                           "constant_ms": table.meta["correction"]["b"], "eras": eras}
        if verbose:
            s_, a_ = sp["searched_layers"], sp["all_layers"]
            print(f"{device}: {len(used)} networks, {len(skipped)} rows left out; LOO MAPE {report['loo_mape_pct']:.2f} % "
                  f"(max {report['loo_max_error_pct']:.1f} %), in-sample MAPE {report['fit_mape_pct']:.2f} %")
            print(f"  Single-Path per-layer table (scale {sp['scale']:.3f}): searched layers 1-20 ({s_['rows']} rows) "
                  f"Kendall tau {s_['kendall_tau']:.3f}, scaled MAPE {s_['scaled_mape_pct']:.2f} %; all 22 layers "
                  f"tau {a_['kendall_tau']:.3f}, MAPE {a_['scaled_mape_pct']:.2f} %")
            ml = report["madds_line"]
            print(f"  multiply-adds line (a*madds+b), same rows: LOO MAPE {ml['loo_mape_pct']:.2f} %; Single-Path layers "
                  f"tau {ml['singlepath_searched_kendall_tau']:.3f}, scaled MAPE {ml['singlepath_searched_scaled_mape_pct']:.2f} %")
            for e, r in sp["layer_cost_ratios"].items():
                print(f"  layer cost k5/k3 at {e}: measured {r['k5_k3_measured']:.3f}, model {r['k5_k3_model']:.3f}; "
                      f"model k7/k3 {r['k7_k3_model']:.3f}")
            print(f"  stem 224->112x32: {sp['stem_224_to_112x32_ms']:.2f} ms ({sp['stem_224_to_112x32_ms_singlepath_scale']:.2f} "
                  f"at the Single-Path scale); classifier 1280->1000: {sp['classifier_1280_to_1000_ms']:.2f} ms; "
                  f"the 19.6 ms constant modelled as {sp['aggregate_19p6_model_ms']:.1f} ms")
            for p in per_net:
                print(f"  {p['network']:<36} published {p['published_ms']:7.1f}  fit {p['fit_ms']:7.1f}  "
                      f"leave-one-out {p['loo_ms']:7.1f}")
            for s in report["left_out"]:
                print(f"  left out: {s}")
            print("  eras (" + device + "@NAME, a factor on the whole prediction): " +
                  ", ".join(f"{e} {v['factor']:.4f} ({v['networks']} networks)" for e, v in eras.items()))
    return summary


def sweep(singlepath: Path | None = None) -> None:
    """The trade-off behind SP_WEIGHT / SP_AGGREGATE_WEIGHT: LOO MAPE vs per-layer τ and the stem's price."""
    rows = singlepath_rows(singlepath or singlepath_path())
    print(f"{'epoch':<5} {'sp_w':>5} {'agg_w':>5} {'LOO MAPE':>9} {'tau 1-20':>8} {'MAPE 1-20':>9} {'stem ms':>7}")
    for epoch in DEVICES:
        for spw in (0.0, 0.05, 0.1, 0.3, 1.0):
            for aggw in (0.03, 0.1, 0.3, 1.0):
                used, _, X, y, w, loo = fit_epoch(epoch, rows, spw, aggw)
                sp = singlepath_report(w, rows)
                print(f"{epoch:<5} {spw:>5} {aggw:>5} {np.mean(np.abs(loo - y) / y) * 100:>8.2f}% "
                      f"{sp['searched_layers']['kendall_tau']:>8.3f} {sp['searched_layers']['scaled_mape_pct']:>8.2f}% "
                      f"{sp['stem_224_to_112x32_ms']:>7.2f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "latency_tables", help="folder for pixel1.csv, pixel1-2018.csv")
    ap.add_argument("--single-path", type=Path, default=None,
                    help="Single-Path NAS's pixel1_runtime_model.json (default: the data root's, "
                         "`mnas data fetch pixel1_singlepath`, else $MNAS_SHARED_DATA or ../shared/data)")
    ap.add_argument("--json", action="store_true", help="print the fit summary as JSON")
    ap.add_argument("--sweep", action="store_true", help="print the source-weight trade-off and exit (writes nothing)")
    args = ap.parse_args(argv)
    from mnas.errors import MnasError

    try:
        if args.sweep:
            sweep(args.single_path)
            return 0
        summary = run(args.out, verbose=not args.json, singlepath=args.single_path)
    except MnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
