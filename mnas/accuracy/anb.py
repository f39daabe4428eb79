"""The ``anb`` evaluator: Accel-NASBench's ImageNet top-1, predicted for any network of its space.

A surrogate fitted on the benchmark's 4,626 trained networks (``experiments/fit_anb.py``),
shipped as inspectable JSON in ``mnas/accuracy/models/anb.json`` (a Matern kernel ridge model on
log(100 - top1) over one-hot choices, log costs and per-layer-slot inputs, with a learned relevance
per column and a learned noise model). The file carries its
10-fold cross-validated error beside baselines; every result names the model and that error::

    ev = get_evaluator("anb", space="anb")
    ev.evaluate(None, space.decode_string("1311-6321-6521-6331-6531-6541-6311"))
    # {"top1": 65.7, "model": "anb-top1-matern", "cv_rmse_pp": ..., "cv_kendall_tau": ..., ...}

Works without the benchmark CSV (only refitting needs it). For the benchmark's own measured
value of a listed network use ``--evaluator table``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mnas.accuracy.base import Evaluator
from mnas.errors import MnasError

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "anb.json"
_MODELS: dict[str, Any] = {}


def load_model(path: str | Path | None = None):
    from mnas.anb import Surrogate

    p = Path(path) if path else DEFAULT_MODEL
    key = str(p.resolve()) if p.exists() else str(p)
    if key not in _MODELS:
        _MODELS[key] = Surrogate.load(p)
    return _MODELS[key]


class AnbEvaluator(Evaluator):
    """Predicted Accel-NASBench ImageNet ``val_top1`` (%) of any network of the ``anb`` space."""

    name = "anb"

    def __init__(self, space: Any = None, cache: str | Path | None = None, model: str | Path | None = None):
        super().__init__(space, cache)
        if self.space is not None and getattr(self.space, "name", "") != "anb":
            raise MnasError(f"anb evaluator: it predicts networks of the anb space, not {getattr(self.space, 'name', self.space)!r} "
                            "(use --space anb)")
        self.model = load_model(model)
        cv = self.model.report.get("cv_shipped", {})
        self._info = {"model": self.model.name, "cv_rmse_pp": cv.get("rmse"), "cv_kendall_tau": cv.get("kendall_tau")}

    def config(self) -> dict:
        return {"evaluator": self.name, "model": self.model.name, "model_digest": self.model.digest,
                "model_file": self.model.path.name if self.model.path else None}

    def _choices(self, nets, samples) -> np.ndarray:
        from mnas.anb import choices_of

        # a sample of the anb space is the fast path (its encoding); a network is inverse-decoded and checked
        use_sample = self.space is not None
        return np.stack([choices_of(s if n is None or (use_sample and s is not None) else n, self.space)
                         for n, s in zip(nets, samples)])

    def _prepare(self, net, sample):
        if net is None and (sample is None or self.space is None):
            raise MnasError("anb evaluator: give a network, or a sample together with the anb space")
        return net

    def cache_key(self, net, sample=None) -> str:
        from mnas.anb import format_code

        return f"{self.name}:{self.model.name}:{self.model.digest}:{format_code(self._choices([net], [sample])[0])}"

    def _results(self, choices: np.ndarray) -> list[dict]:
        from mnas.anb import format_code

        top1 = self.model.predict(choices)
        return [{"top1": float(t), "loss": math.nan, "cost_s": 0.0, "key": format_code(c), **self._info}
                for t, c in zip(top1, choices)]

    def _evaluate(self, net, sample) -> dict:
        return self._results(self._choices([net], [sample]))[0]

    def evaluate_many(self, nets, samples=None):
        """Vectorised: one batched prediction (per network with a cache file, so results persist)."""
        nets = list(nets)
        samples = list(samples) if samples is not None else [None] * len(nets)
        if self.cache.path is not None or not nets:
            return super().evaluate_many(nets, samples)
        results = self._results(self._choices(nets, samples))
        for r in results:
            r.update(evaluator=self.name, cached=False)
        self.evaluations += len(results)
        return results
