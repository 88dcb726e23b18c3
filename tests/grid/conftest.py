"""Fixtures for the grid engine: settings on a throw-away workdir, a shared 2-worker LocalCluster.

Every grid here lives under one session-wide temporary workdir (so the empty MLflow store
template is created once), each test under its own grid name. The real-data grids hold
out two small melanoma cohorts (Hugo 2016, Riaz 2017) for one trial (light config).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from icb_kedro.grid.manifest import _environ

PROJECT_ROOT = Path(__file__).resolve().parents[2]
HELD_OUT = ["Melanoma_Nivolumab_Riaz2017", "Melanoma_PD1_Hugo2016"]

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


def shared_data_path() -> Path:
    path = Path(os.environ.get("ICB_DATA_DIR") or PROJECT_ROOT / ".." / "shared" / "data").resolve()
    if not (path / "cohorts").is_dir():
        raise RuntimeError(f"the shared data directory {path} has no cohorts/ (set ICB_DATA_DIR)")
    return path


@pytest.fixture(scope="session")
def grid_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("grid_workdir")


@pytest.fixture(scope="session")
def tracking_uri(grid_workdir: Path) -> Iterator[str]:
    """A fresh SQLite MLflow store for the grid tests (copied from the cells' empty template)."""
    import shutil

    from icb_kedro.grid.layout import mlflow_template_db

    db = grid_workdir / "tracking" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(mlflow_template_db(grid_workdir), db)
    yield f"sqlite:///{db}"


@pytest.fixture(scope="session")
def make_settings(grid_workdir: Path, tracking_uri: str):
    """``make_settings(name, **grid_overrides)`` -> GridSettings of the light env in the test
    workdir."""
    from icb_kedro.grid.config import deep_merge, load_settings

    def _make(name: str, overrides: dict[str, Any] | None = None, env: str = "light"):
        base = {"name": name, "workdir": str(grid_workdir), "cohorts": HELD_OUT}
        # load_settings reads both: the shared data, and a tracking store that is never the
        # project's mlflow.db. Set only while loading; the settings carry them from then on.
        with _environ(
            {
                "ICB_DATA_DIR": os.environ.get("ICB_DATA_DIR") or str(shared_data_path()),
                "MLFLOW_TRACKING_URI": tracking_uri,
            }
        ):
            return load_settings(PROJECT_ROOT, env=env, overrides=deep_merge(base, overrides or {}))

    return _make


@pytest.fixture(scope="session")
def dask_client(payloads) -> Iterator[Any]:
    """One 2-worker LocalCluster (processes, one thread each) shared by every grid test."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 3}):
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=40,
        )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close(timeout=20)


@pytest.fixture(scope="session")
def payloads() -> Iterator[Any]:
    """``tests/grid/grid_payloads.py``, importable here and in Dask worker processes.

    Workers unpickle the payload functions (and errors raised in them) by module name, so
    the folder goes on ``sys.path`` and on ``PYTHONPATH`` (inherited by spawned workers)
    before any cluster starts.
    """
    import importlib
    import sys

    here = str(Path(__file__).parent)
    sys.path.insert(0, here)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    with _environ({"PYTHONPATH": os.pathsep.join([here, *paths])}):
        yield importlib.import_module("grid_payloads")
    sys.path.remove(here)
