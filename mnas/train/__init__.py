"""`mnas train`: a found network trained from scratch with a paper's recipe, on one or many processes.

- :mod:`mnas.train.recipes` — the recipes as data (``recipes.yaml``: ``v3``, ``mnasnet-proxy``, ``quick``).
- :mod:`mnas.train.loop` — the training loop (torch.distributed, resumable, rank-0 writes).
- :mod:`mnas.train.run` — the run folder: settings saved once, read back on ``--resume``.

The pieces it shares with the ``train`` evaluator and NetAdapt fine-tuning come from
:mod:`mnas.training` (optimizer and its parameter groups, schedules, top-k counts). Nothing
here imports torch at import time.
"""

from mnas.train.recipes import Recipe, names, recipe

__all__ = ["Recipe", "names", "recipe"]
