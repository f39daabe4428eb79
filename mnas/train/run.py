"""The training run folder: ``config.yaml`` written once (by rank 0), read back to resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnas.arch import Network, parse_network
from mnas.errors import MnasError
from mnas.train.recipes import Recipe

CONFIG = "config.yaml"
KIND = "training run"
# fields a resumed run may change: they decide speed (or where the same images now are), never the result
RESUME_FIELDS = ("workers", "threads", "save_every_steps", "device", "data_dir")  # data_dir: the same images moved


def save_run(out: str | Path, net: Network, recipe_name: str, rc: Recipe, processes: int) -> Path:
    """Create run folder ``out`` with its ``config.yaml`` (an existing run there is an error naming ``--resume``)."""
    import yaml

    from mnas.io import check_out_dir
    from mnas.run import write_text

    out = check_out_dir(out)
    if (out / CONFIG).is_file():
        raise MnasError(f"{out} already holds a {KIND}; continue it with `mnas train --resume {out}` or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    doc = {"arch": str(net), "recipe_name": recipe_name, "processes": processes, "recipe": rc.to_dict()}
    header = "# mnas train: the network, the recipe and the process count of this run (`mnas train --resume DIR`)\n"
    write_text(out / CONFIG, header + yaml.safe_dump(doc, sort_keys=False))
    return out


def load_run(out: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Network, Recipe, dict]:
    """``(network, recipe, config)`` of the run in ``out``; ``overrides`` may change only :data:`RESUME_FIELDS`."""
    from mnas.io import load_yaml_file

    path = Path(out) / CONFIG
    if not path.is_file():
        raise MnasError(f"{out} is not a {KIND} folder (no {CONFIG}); start one with `mnas train ARCH --out {out}`")
    doc = load_yaml_file(path, f"{KIND} config YAML")
    if not isinstance(doc, dict) or not {"arch", "recipe"} <= set(doc):
        raise MnasError(f"{path}: not a {KIND} config (expected arch and recipe)")
    bad = sorted(set(overrides or {}) - set(RESUME_FIELDS))
    if bad:
        raise MnasError(f"--resume: {', '.join(bad)} would change the result of {out}; a resumed run may change only "
                        f"{', '.join(RESUME_FIELDS)} (start a new run with --out to train otherwise)")
    rc = Recipe.from_dict({**doc["recipe"], **(overrides or {})}, where=str(path)).check()
    return parse_network(str(doc["arch"])), rc, doc
