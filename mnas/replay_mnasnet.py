"""`mnas replay mnasnet` moved to :mod:`mnas.replay.mnasnet`; this name stays importable."""

from mnas.replay.mnasnet import (SEARCH_DIR, VARIANTS, W, ReplayMnasnetConfig, best_listed, cmd_replay_mnasnet,  # noqa: F401
                                 config_dict, describe, plot_replay, report, run_replay_mnasnet)

__all__ = ["SEARCH_DIR", "VARIANTS", "W", "ReplayMnasnetConfig", "best_listed", "cmd_replay_mnasnet", "config_dict",
           "describe", "plot_replay", "report", "run_replay_mnasnet"]
