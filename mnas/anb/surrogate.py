"""Fitted Accel-NASBench surrogates (accuracy and the devices' latency), read from their JSON files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mnas.anb.choices import BLOCKS, block_digits, check_choices, parse_code
from mnas.anb.costs import features, kernel_inputs, one_hot
from mnas.errors import MnasError

class Surrogate:
    """A fitted Accel-NASBench surrogate read from its JSON file (see ``experiments/fit_anb.py``).

    ``components`` are summed with their weights; each is one of

    * ``additive``: ``intercept + sum over blocks of table[block][combination]`` (a per-block lookup
      table over the 48 (e, k, l, se) combinations; the devices' model);
    * ``kernel``: kernel ridge regression over one-hot choices and standardised log
      multiply-adds/parameters (``inputs: onehot+logcost+slots`` adds :func:`slot_inputs`), each
      column times its ``feature_scale`` (learned relevance): ``f = intercept + sum_i dual_i k(z, z_i)``
      with ``k`` an RBF ``exp(-gamma |z - z_i|^2)`` or (``kernel: matern52``) a Matern 5/2 of
      ``lengthscale``, its support networks stored as compact encodings; ``link: log_error`` means
      it was fitted on ``log(100 - top1)``: top1 = ``100 - exp(shift + scale * f)``;
    * ``lightgbm``: a LightGBM model in its native text format, over :func:`features`.

    ``report`` holds the fit's cross-validated figures beside its baselines.
    """

    def __init__(self, doc: dict, path: Path | None = None):
        self.doc, self.path = doc, path
        self.name: str = doc.get("name", path.stem if path else "anb")
        self.target: str = doc.get("target", "")
        self.unit: str = doc.get("unit", "")
        self.report: dict = doc.get("report", {})
        self.digest: str = ""  # of the model file (part of evaluator cache keys)
        self._parts: list[tuple[float, str, Any]] = []
        for comp in doc["components"]:
            kind = comp["kind"]
            if kind == "additive":
                table = np.array(comp["table"], dtype=float)
                self._parts.append((comp["weight"], kind, (float(comp["intercept"]), table)))
            elif kind == "kernel":
                support = np.stack([parse_code(s) for s in comp["support"]])
                mean, std = np.array(comp["cont_mean"]), np.array(comp["cont_std"])
                slots = comp.get("inputs", "onehot+logcost") == "onehot+logcost+slots"
                n_oh = one_hot(support[:1]).shape[1]
                scale = np.concatenate([np.ones(n_oh), np.full(len(mean), float(comp["cont_weight"]))])
                if comp.get("feature_scale") is not None:  # learned relevance (ARD)
                    scale = scale * np.array(comp["feature_scale"], dtype=float)
                shape = comp.get("kernel", "rbf")
                if shape not in ("rbf", "matern52"):
                    raise MnasError(f"surrogate {path}: unknown kernel {shape!r}")
                link = comp.get("link") or {"kind": "identity"}
                if link["kind"] not in ("identity", "log_error"):
                    raise MnasError(f"surrogate {path}: unknown link {link['kind']!r}")
                zs = self._z(support, mean, std, scale, slots)
                self._parts.append((comp["weight"], kind, dict(
                    intercept=float(comp["intercept"]), shape=shape, gamma=float(comp.get("gamma") or 0.0),
                    lengthscale=float(comp.get("lengthscale") or 1.0), zs=zs, zs2=(zs * zs).sum(1), dual=np.array(comp["dual"], dtype=float),
                    mean=mean, std=std, scale=scale, slots=slots, link=link)))
            elif kind == "lightgbm":
                import lightgbm

                self._parts.append((comp["weight"], kind, lightgbm.Booster(model_str=comp["model"])))
            else:
                raise MnasError(f"surrogate {path}: unknown component kind {kind!r}")

    @staticmethod
    def _z(choices, mean, std, scale, slots: bool = False) -> np.ndarray:
        oh, cont = kernel_inputs(choices, slots)
        return np.concatenate([oh, (cont - mean) / std], axis=1) * scale

    @staticmethod
    def kernel_values(shape: str, d2: np.ndarray, gamma: float, lengthscale: float) -> np.ndarray:
        """The kernel at squared distances ``d2``: RBF ``exp(-gamma d2)`` or Matern 5/2 of length ``lengthscale``."""
        if shape == "rbf":
            return np.exp(-gamma * d2)
        r = np.sqrt(5.0 * d2) / lengthscale
        return (1.0 + r + r * r / 3.0) * np.exp(-r)

    @classmethod
    def load(cls, path: str | Path) -> "Surrogate":
        import json

        p = Path(path)
        if not p.is_file():
            raise MnasError(f"surrogate model {p} not found: regenerate it with `python experiments/fit_anb.py`")
        try:
            doc = json.loads(p.read_text())
            if not isinstance(doc, dict) or "components" not in doc:
                raise ValueError("no 'components'")
        except ValueError as e:
            raise MnasError(f"surrogate model {p} is malformed ({e}): regenerate it with `python experiments/fit_anb.py`") from None
        out = cls(doc, p)
        import hashlib

        out.digest = hashlib.sha1(p.read_bytes()).hexdigest()[:12]
        return out

    def predict(self, choices: np.ndarray, chunk: int = 2048) -> np.ndarray:
        c = np.asarray(choices, dtype=np.int64).reshape(-1, BLOCKS, 4)
        out = np.zeros(len(c))
        for weight, kind, m in self._parts:
            if kind == "additive":
                intercept, table = m
                out += weight * (intercept + table[np.arange(BLOCKS), block_digits(c)].sum(axis=1))
            elif kind == "kernel":
                zs, zs2 = m["zs"], m["zs2"]
                for i in range(0, len(c), chunk):
                    z = self._z(c[i:i + chunk], m["mean"], m["std"], m["scale"], m["slots"])
                    d2 = np.maximum((z * z).sum(1)[:, None] + zs2[None, :] - 2.0 * z @ zs.T, 0.0)
                    f = m["intercept"] + self.kernel_values(m["shape"], d2, m["gamma"], m["lengthscale"]) @ m["dual"]
                    if m["link"]["kind"] == "log_error":  # fitted on log(100 - top1), standardised
                        f = 100.0 - np.exp(m["link"]["shift"] + m["link"]["scale"] * f)
                    out[i:i + chunk] += weight * f
            else:
                out += weight * m.predict(features(c), num_threads=1)
        return out

    def block_contributions(self, choices: Any) -> list[tuple[str, float]]:
        """(label, value) per block of an additive model (``op_breakdown`` for the devices)."""
        c = check_choices(choices)
        parts = [p for p in self._parts if p[1] == "additive"]
        if not parts:
            return []
        rows: list[tuple[str, float]] = [("base (every block at its cheapest)", float(sum(w * m[0] for w, _, m in parts)))]
        d = block_digits(c[None])[0]
        for b in range(BLOCKS):
            rows.append((f"block{b} {''.join(map(str, c[b]))}", float(sum(w * m[1][b, d[b]] for w, _, m in parts))))
        if len(parts) != len(self._parts):  # the rest (interactions the table misses) in one line
            rest = Surrogate({"components": [self.doc["components"][i] for i, p in enumerate(self._parts)
                                              if p[1] != "additive"]}).predict(c[None])[0]
            rows.append(("interactions (LightGBM on the table's residuals)", float(rest)))
        return rows
