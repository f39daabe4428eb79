"""What is registered, in one place: the names the CLI offers as choices and lists in its help.

========== ======================================================= ============================
registry   where an entry is added                                  listed by
========== ======================================================= ============================
strategy   one line in ``mnas.search.strategies.STRATEGIES``       :func:`strategies`
evaluator  one line in ``mnas.accuracy.base.EVALUATORS``           :func:`evaluators`
space      a YAML file in ``search_spaces/``                        :func:`spaces`
device     a table file in ``latency_tables/`` (or a folder on     :func:`devices`
           ``$MNAS_LATENCY_TABLES``, or ``./latency_tables``), or
           one line in ``mnas.latency.predictor.MODEL_DEVICES``
========== ======================================================= ============================

Each function reads its registry when called (a directory listing for spaces and
devices), never at import, and imports no implementation module. See
``CONTRIBUTING.md`` for the one-module recipes.
"""

from __future__ import annotations

from typing import Iterable


def strategies() -> list[str]:
    """Registered search strategies (``mnas search --strategy``), in table order."""
    from mnas.search.strategies import STRATEGIES

    return list(STRATEGIES)


def evaluators() -> list[str]:
    """Registered accuracy evaluators (``--evaluator``), in table order."""
    from mnas.accuracy.base import EVALUATORS

    return list(EVALUATORS)


def spaces() -> list[str]:
    """Search spaces shipped in ``search_spaces/`` (any other YAML file is accepted by path)."""
    from mnas.space import list_spaces

    return list_spaces()


def devices() -> list[str]:
    """Latency devices by name: table files (``mnas latency list``), then model devices (no table).

    Any table file is accepted by path as well.
    """
    from mnas.latency import predictor
    from mnas.latency.table import available

    tables = list(available())
    models = getattr(predictor, "MODEL_DEVICES", {})  # name -> loader of a model (surrogate, analytic)
    return tables + [d for d in models if d not in tables]


def listing(names: Iterable[str], limit: int = 12) -> str:
    """``a, b, c`` for a help text (``a, b, … (20 in all)`` past ``limit``)."""
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", … ({len(names)} in all)"
