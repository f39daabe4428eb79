"""Platform-aware search: reward, strategies (Optuna samplers), the resumable runner, Ray backend.

    from mnas.search import SearchConfig, run_search
    result = run_search(SearchConfig(target_ms=15))      # runs/<timestamp>/…

Submodules: :mod:`~mnas.search.reward` (MnasNet's reward and presets),
:mod:`~mnas.search.strategies` (name -> sampler table), :mod:`~mnas.search.runner`
(storage, resume, export), :mod:`~mnas.search.ray_backend` (Ray Tune).
Importing this package imports neither torch nor optuna nor ray.
"""

from mnas.search.config import SearchConfig
from mnas.search.reward import PRESETS, Reward, get_reward, mnas_reward


def run_search(config, **kwargs):
    """See :func:`mnas.search.runner.run_search`."""
    from mnas.search.runner import run_search as _run

    return _run(config, **kwargs)


__all__ = ["PRESETS", "Reward", "SearchConfig", "get_reward", "mnas_reward", "run_search"]
