"""Leave-one-out error of ``pixel1@ERA`` / ``pixel1-2018@ERA`` per published source, beside the trivial lines.

Each published source timed the Pixel-1 with its own TFLite build (its *era*);
``experiments/fit_pixel1.py`` stores one factor per source in each table's
header (``eras``; ``get_predictor("pixel1@table3")``). This script measures how
well that works on networks the factor has not seen: for every network ``i`` of
a source ``S`` and a device fitted on epoch ``E``,

1. the device's model is refitted without ``i`` when ``i`` is one of its fitted
   rows (an epoch-``E`` row), else the shipped fit is used;
2. ``S``'s factor is fitted (least relative squares,
   :func:`mnas.latency.pixel1_era.era_factor`) on ``S``'s *other* networks;
3. ``i`` is predicted as factor × model.

The baselines go through the same steps: a multiply-adds line and a parameters
line (``ms = a·x + b``, least relative squares on the epoch's rows without
``i``), each with its own per-source factor. "no factor" is the plain device.
A source with a single usable network has no leave-one-out factor (—).
Single-Path NAS's networks (seeded samples of its space priced as its search
code prices them: 19.6 ms + its measured layers) are not fitted rows, but the
model did see its per-layer rows; their factor is fitted on the other 99.

    python experiments/pixel1_eras.py           # writes experiments/results/pixel1_eras.md
    python experiments/pixel1_eras.py --out F   # elsewhere; deterministic (no clock, no randomness)
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mnas.latency.pixel1_era import era_factor  # noqa: E402

OUT = REPO / "experiments" / "results" / "pixel1_eras.md"


def _fit_module():
    spec = importlib.util.spec_from_file_location("fit_pixel1", REPO / "experiments" / "fit_pixel1.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(a, b) of ms = a·x + b, least relative squares (as fit_pixel1.madds_line)."""
    a, b = np.linalg.lstsq(np.stack([x, np.ones(len(x))], 1) / y[:, None], np.ones(len(y)), rcond=None)[0]
    return float(a), float(b)


def _tau(p: np.ndarray, y: np.ndarray) -> float | None:
    from scipy.stats import kendalltau

    return float(kendalltau(p, y).statistic) if len(y) >= 3 else None


def evaluate(singlepath: Path | None = None) -> dict:
    """device -> era -> figures (see the module docstring)."""
    from mnas.counting import count

    fp = _fit_module()
    rows = fp.singlepath_rows(singlepath or fp.singlepath_path())
    sp_block = fp.singlepath_block(rows)
    # every usable published row once, with its epoch and its index among that epoch's fitted rows
    items = []  # (era, label, Network, ms, epoch, index in the epoch's rows)
    fitted = {}
    for epoch in fp.DEVICES:
        used = fp.published_rows(epoch, with_era=True)[0]
        fitted[epoch] = used
        items += [(era, label, net, ms, epoch, j) for j, (label, net, ms, era) in enumerate(used)]
    items += [(fp.SINGLEPATH_ERA[0], label, net, ms, None, None) for label, net, ms in fp.singlepath_networks(rows)]
    feats = {id(it): fp.network_features(it[2]) for it in items}
    madds = {id(it): count(it[2]).madds / 1e6 for it in items}
    params = {id(it): count(it[2]).params / 1e6 for it in items}
    eras = [e for e, _, _ in fp.ERA_SOURCES] + [fp.SINGLEPATH_ERA[0]]
    out: dict = {}
    for epoch, (device, _) in fp.DEVICES.items():
        used = fitted[epoch]
        X = np.array([fp.network_features(n) for _, n, _, _ in used])
        y = np.array([ms for _, _, ms, _ in used])
        xm = np.array([count(n).madds / 1e6 for _, n, _, _ in used])
        xp = np.array([count(n).params / 1e6 for _, n, _, _ in used])
        w_full = fp.fit(X, y, *sp_block)
        w_loo, m_loo, p_loo = {}, {}, {}
        for j in range(len(used)):
            keep = np.arange(len(used)) != j
            w_loo[j] = fp.fit(X[keep], y[keep], *sp_block)
            m_loo[j], p_loo[j] = _line(xm[keep], y[keep]), _line(xp[keep], y[keep])
        m_full, p_full = _line(xm, y), _line(xp, y)
        out[device] = {}
        for era in eras:
            its = [it for it in items if it[0] == era]
            if not its:
                continue
            pub = np.array([it[3] for it in its])
            res: dict[str, list] = {"none": [], "model": [], "madds": [], "params": []}
            factors = []
            for i, it in enumerate(its):
                mine = it[4] == epoch
                w = w_loo[it[5]] if mine else w_full
                (ma, mb), (pa, pb) = (m_loo[it[5]], p_loo[it[5]]) if mine else (m_full, p_full)
                model = np.array([fp.network_features(o[2]) @ w[:-2] + w[-2] for o in its])
                mline = np.array([ma * madds[id(o)] + mb for o in its])
                pline = np.array([pa * params[id(o)] + pb for o in its])
                others = np.arange(len(its)) != i
                res["none"].append(model[i])
                if others.any():
                    f = era_factor(model[others], pub[others])
                    factors.append(f)
                    res["model"].append(f * model[i])
                    res["madds"].append(era_factor(mline[others], pub[others]) * mline[i])
                    res["params"].append(era_factor(pline[others], pub[others]) * pline[i])
            p_in = np.array([feats[id(o)] @ w_full[:-2] + w_full[-2] for o in its])
            fig = {"networks": len(its), "factor": era_factor(p_in, pub), "epoch_rows": sum(it[4] == epoch for it in its)}
            for k, v in res.items():
                if len(v) == len(its):
                    rel = np.abs(np.array(v) / pub - 1) * 100
                    fig[k] = {"mape_pct": float(rel.mean()), "max_pct": float(rel.max()), "tau": _tau(np.array(v), pub),
                              "mean_signed_pct": float(np.mean(np.array(v) / pub - 1) * 100)}
                else:
                    fig[k] = None
            fig["factor_loo_range"] = (min(factors), max(factors)) if factors else None
            out[device][era] = fig
    return out


def _f(x, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def render(res: dict) -> str:
    fp = _fit_module()
    titles = fp.era_titles()
    lines = [
        "# `pixel1` eras: leave-one-out error per published source",
        "",
        "Written by `python experiments/pixel1_eras.py` (deterministic; the factors themselves are fitted by",
        "`experiments/fit_pixel1.py` into the tables' `eras` header, used as `--device pixel1@ERA`). Per network `i`",
        "of a source: the device's model refitted without `i` if `i` is one of its fitted rows, the source's factor",
        "fitted on the source's other networks, `i` predicted as factor × model. Baselines the same way: a",
        "multiply-adds line and a parameters line (`a·x + b` on the device's epoch rows without `i`), each with its own",
        "per-source factor. *no factor* = the plain device (signed: mean of predicted/published − 1). τ: Kendall's",
        "tau-b over the source's networks (— below 3 networks); MAPE (max) in %.",
        "",
    ]
    for device, eras in res.items():
        lines += [f"## `{device}`", "",
                  "| era (`" + device + "@ERA`) | source | networks (fitted rows) | factor (all) | no factor: MAPE, signed | "
                  "**with era factor: MAPE (max)** | τ | madds line + factor: MAPE / τ | params line + factor: MAPE / τ |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for era, f in eras.items():
            none, m, ml, pl = f["none"], f["model"], f["madds"], f["params"]
            lines.append(
                f"| `{era}` | {titles[era]} | {f['networks']} ({f['epoch_rows']}) | {f['factor']:.4f} | "
                f"{none['mape_pct']:.2f} %, {none['mean_signed_pct']:+.2f} % | "
                + (f"**{m['mape_pct']:.2f} %** ({m['max_pct']:.1f} %) | {_f(m['tau'], '.3f')} | "
                   f"{ml['mape_pct']:.2f} % / {_f(ml['tau'], '.3f')} | {pl['mape_pct']:.2f} % / {_f(pl['tau'], '.3f')} |"
                   if m else f"— (one network) | {_f(none['tau'], '.3f')} | — | — |"))
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT, help=f"markdown file to write (default {OUT.relative_to(REPO)})")
    ap.add_argument("--single-path", type=Path, default=None, help="Single-Path NAS's pixel1_runtime_model.json")
    args = ap.parse_args(argv)
    from mnas.errors import MnasError

    try:
        text = render(evaluate(args.single_path))
    except MnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from mnas.io import atomic_write_text

    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
