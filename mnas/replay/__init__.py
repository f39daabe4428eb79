"""Replay how MobileNetV3 was found (Howard et al. 2019), one phase at a time, and compare.

Two replays:

``v3-large``
    seed = MnasNet-A1 (the paper reused it), NetAdapt on the device to the
    published V3-Large's predicted latency, then the manual redesign steps of
    :data:`mnas.redesign.V3_STEPS` one by one.
``v3-small``
    a block-wise search from scratch over the ``v3_small`` space with the
    ``v3-small`` reward (w = −0.15, target 15.8 ms: the paper's V3-Small latency on
    Pixel-1), then NetAdapt to the published V3-Small's predicted latency, then the
    same redesign steps (a step that does not apply is skipped, with the reason).

A run folder holds each phase's result as it finishes, so a killed replay resumes
and skips every finished phase::

    config.yaml        the settings (a resumed run reads them back)
    search/            the search run (v3-small), search.json its best architecture
    netadapt/          the NetAdapt run, netadapt.json its summary
    redesign.csv       one row per redesign step: latency and multiply-adds before/after
    references.csv     the published networks at their latency, under the same evaluator
    path.csv           the replayed path (every phase's network), the data of the plot
    report.md          the report, replay.png the latency–accuracy plot, summary.json

Compute first, draw second: :func:`replay_points` and :func:`reference_points`
return the plot's data; :func:`plot_replay` only draws them.

The package, by job (every public name is importable from ``mnas.replay``):

* :mod:`mnas.replay.config` — :class:`ReplayConfig`, the replays and their published networks;
  budgets come from the one table in :mod:`mnas.run`;
* :mod:`mnas.replay.phases` — :class:`Replay`, its phases, :func:`default_search`, :func:`run_replay`;
* :mod:`mnas.replay.report` — the plot data, the plot, the Markdown report;
* :mod:`mnas.replay.diff` — architecture diffs beside the paper-style table;
* :mod:`mnas.replay.mnasnet` — ``mnas replay mnasnet`` (MnasNet's search stage on Accel-NASBench).

Run folders, evaluators, budgets and option parsing are shared with search and NetAdapt
(:mod:`mnas.run`).
"""

from mnas.replay.config import (BUDGETS, PUBLISHED, REFERENCES, REPLAYS, SPACE, V3_SMALL_REWARD, V3_SMALL_TARGET_MS,
                                Budget, ReplayConfig)
from mnas.replay.diff import agreement, side_by_side
from mnas.replay.phases import Replay, default_search, measure, run_replay, step_applies
from mnas.replay.report import plot_replay, published_top1, reference_points, render_report, replay_points

__all__ = ["BUDGETS", "PUBLISHED", "REFERENCES", "REPLAYS", "SPACE", "V3_SMALL_REWARD", "V3_SMALL_TARGET_MS", "Budget",
           "Replay", "ReplayConfig", "agreement", "default_search", "measure", "plot_replay", "published_top1",
           "reference_points", "render_report", "replay_points", "run_replay", "side_by_side", "step_applies"]
