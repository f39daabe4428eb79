"""Shared fixtures: the shared data folder and one local Ray runtime per test session."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MNAS_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent (set MNAS_SHARED_DATA to its path)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_local():
    """Start Ray once for the whole session (each start costs seconds)."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield ray
    ray.shutdown()



# ---------------------------------------------------------------- Accel-NASBench (tests/test_anb_*.py)
def load_experiment(name: str):
    """The script ``experiments/<name>.py`` imported as a module (its cheap functions, without running it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def anb_code(row: dict) -> str:
    """A CSV row's compact encoding, built from its columns alone (``EKLS`` per block, joined by ``-``)."""
    return "-".join("".join(row[f"block{b}_{f}"] for f in ("e", "k", "l", "se")) for b in range(7))


@pytest.fixture(scope="session")
def anb_csv_path(shared_data) -> Path:
    path = shared_data / "accel_nasbench" / "accel_nasbench.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def anb_rows(anb_csv_path) -> list[dict]:
    """The benchmark's rows read with the csv module, independently of mnas.anb."""
    with open(anb_csv_path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def anb_space():
    from mnas.space import load_space

    return load_space("anb")
