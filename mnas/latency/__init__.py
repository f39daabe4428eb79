"""Per-device latency lookup tables: keys, tables, profiler, predictor, validation, imports.

Search and pruning see one call::

    from mnas.latency import get_predictor
    p = get_predictor("pixel1")      # a device name (`mnas latency list`) or a table file
    p.predict(net)                   # ms

Importing this package does not import torch or read any file.
"""

from mnas.latency.predictor import Predictor, get_predictor

__all__ = ["Predictor", "get_predictor"]
