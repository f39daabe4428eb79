"""Fit the Pixel-1 cost model to published whole-network latencies; write latency_tables/pixel1*.csv.

No Pixel-1 phone is available, so each op's latency is modelled as a
non-negative combination of transparent features of the op:

==============  ==================================================================
feature         what (per op; summed over a network's ops)
==============  ==================================================================
pw_madds        multiply-adds of 1×1 convolutions (expand, project, head conv,
                depthwise-separable pointwise), in millions
dw_madds        multiply-adds of depthwise convolutions (millions)
conv_madds      multiply-adds of full k×k convolutions (the stem), millions
fc_params       weights of fully-connected layers (hidden FC, classifier) and
                SE's two 1×1 convs, millions (read once per image: memory bound)
traffic         activation elements read + written by every conv / FC (millions)
hswish          elements passed through h-swish (millions)
se              number of squeeze-excite modules
layers          number of conv / FC layers (fixed per-layer cost)
==============  ==================================================================

plus a per-network constant (stored as the table's correction ``b``, ``a = 1``).
Weights are fitted with non-negative least squares on relative error (each
network's row divided by its latency). Data: ``latency_tables/published/pixel1.csv``
(transcribed with citations), epoch ``F`` -> ``pixel1``, epoch ``M`` -> ``pixel1-2018``.
A published row is used when mnas.zoo registers its network (name, width) and
the zoo's multiply-adds at 224 are within 2 % of the published figure (so the
zoo defines the same architecture); resolution variants are the same network
(``zoo.get(name).with_resolution(r)``). Rows left out are listed in the output.

The table lists every op of the zoo networks at resolutions 96–256 and of the
default search spaces (v3_small, v3_large, mnasnet at 224; nasbench_macro at 32
with 10 and 1000 classes), so it is used exactly like a measured table.

    python experiments/fit_pixel1.py            # writes latency_tables/pixel1.csv, pixel1-2018.csv
    python experiments/fit_pixel1.py --out DIR  # elsewhere (the test runs it twice and compares bytes)

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
FEATURES = ("pw_madds", "dw_madds", "conv_madds", "fc_params", "traffic", "hswish", "se", "layers")
TABLE_RESOLUTIONS = (96, 128, 160, 192, 224, 256)
SPACES_224 = ("v3_small", "v3_large", "mnasnet")
MADDS_TOLERANCE = 0.02
DEVICES = {"F": ("pixel1", "Pixel-1 (MobileNetV3 paper's TFLite build, 2019)"),
           "M": ("pixel1-2018", "Pixel-1 (MnasNet-era TFLite build, 2018)")}


# --------------------------------------------------------------------------- features
# The feature functions live in the library (mnas.latency.opmodel) so the predictor can
# price ops a modelled table does not list with the same model.
from mnas.latency.opmodel import FEATURES as _FEATURES, head_features, layer_features  # noqa: E402,F401

assert FEATURES == _FEATURES


def network_ops(net: Network, num_classes: int = 1000) -> list[tuple[str, np.ndarray]]:
    ops = [(layer_key(layer), layer_features(layer)) for layer in net.layers()]
    return ops + [(h.key, head_features(h)) for h in head_ops(net, num_classes)]


def network_features(net: Network) -> np.ndarray:
    return np.sum([f for _, f in network_ops(net)], axis=0)


# --------------------------------------------------------------------------- data

def published_rows(epoch: str):
    """(label, Network, published ms) for usable rows, and (label, reason) for the others."""
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
        used.append((label, zoo.get(name).with_resolution(int(r.resolution)), float(r.pixel1_ms)))
    return used, skipped


# --------------------------------------------------------------------------- fit

def fit(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """NNLS on relative error: minimise sum(((X w + c) / y - 1)^2), w, c >= 0. Returns [w..., c]."""
    from scipy.optimize import nnls

    A = np.hstack([X, np.ones((len(X), 1))]) / y[:, None]
    norm = np.linalg.norm(A, axis=0)
    norm[norm == 0] = 1.0
    w, _ = nnls(A / norm, np.ones(len(y)), maxiter=10_000)
    return w / norm


def predict(w: np.ndarray, X: np.ndarray) -> np.ndarray:
    return X @ w[:-1] + w[-1]


def leave_one_out(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        out[i] = predict(fit(X[keep], y[keep]), X[i:i + 1])[0]
    return out


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


def build_table(epoch: str, w: np.ndarray, ops: dict[str, np.ndarray], report: dict) -> LatencyTable:
    device, what = DEVICES[epoch]
    weights = {k: float(f"{v:.6g}") for k, v in zip(FEATURES, w[:-1])}
    meta = {
        "device": device,
        "engine": "TFLite float32 (modelled)",
        "threads": 1,
        "cpu": f"{what}, single big core (Snapdragon 821 Kryo); no phone measured: a fitted model",
        "date": "published 2018-2019; model fitted by experiments/fit_pixel1.py",
        "method": ("per-op cost = non-negative weights x op features (NNLS on relative error) fitted to published "
                   f"whole-network Pixel-1 latencies, epoch {epoch}: see experiments/fit_pixel1.py"),
        "unit": "ms",
        "source": "latency_tables/published/pixel1.csv",
        "feature_weights_ms": weights,
        "feature_units": "pw/dw/conv madds, fc_params, traffic, hswish in millions; se and layers are counts",
        "fit": report,
        "correction": {"a": 1.0, "b": float(f"{w[-1]:.6g}"), "n": report["networks"],
                       "note": "b = the fitted per-network constant"},
    }
    entries = {k: Entry(float(f @ w[:-1]), 0.0, 0) for k, f in ops.items()}
    return LatencyTable(meta=meta, entries=entries)


def run(out_dir: Path, verbose: bool = True) -> dict:
    ops = table_ops()
    summary = {}
    for epoch, (device, _) in DEVICES.items():
        used, skipped = published_rows(epoch)
        X = np.array([network_features(n) for _, n, _ in used])
        y = np.array([ms for _, _, ms in used])
        w = fit(X, y)
        loo = leave_one_out(X, y)
        fitted = predict(w, X)
        rel = np.abs(loo - y) / y * 100
        report = {
            "networks": len(used),
            "loo_mape_pct": round(float(rel.mean()), 2),
            "loo_max_error_pct": round(float(rel.max()), 2),
            "fit_mape_pct": round(float(np.mean(np.abs(fitted - y) / y) * 100), 2),
            "used": [lbl for lbl, _, _ in used],
            "left_out": [f"{lbl}: {why}" for lbl, why in skipped],
        }
        table = build_table(epoch, w, ops, report)
        table.save(out_dir / f"{device}.csv")
        per_net = [{"network": lbl, "published_ms": ms, "fit_ms": round(float(f), 2), "loo_ms": round(float(lo), 2)}
                   for (lbl, _, ms), f, lo in zip(used, fitted, loo)]
        summary[device] = {**{k: v for k, v in report.items() if k not in ("used",)}, "per_network": per_net,
                           "weights": table.meta["feature_weights_ms"], "constant_ms": table.meta["correction"]["b"]}
        if verbose:
            print(f"{device}: {len(used)} networks, {len(skipped)} rows left out; LOO MAPE {report['loo_mape_pct']:.2f} % "
                  f"(max {report['loo_max_error_pct']:.1f} %), in-sample MAPE {report['fit_mape_pct']:.2f} %")
            for p in per_net:
                print(f"  {p['network']:<36} published {p['published_ms']:7.1f}  fit {p['fit_ms']:7.1f}  "
                      f"leave-one-out {p['loo_ms']:7.1f}")
            for s in report["left_out"]:
                print(f"  left out: {s}")
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "latency_tables", help="folder for pixel1.csv, pixel1-2018.csv")
    ap.add_argument("--json", action="store_true", help="print the fit summary as JSON")
    args = ap.parse_args(argv)
    summary = run(args.out, verbose=not args.json)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
