"""Merge finished cells into the project's MLflow experiment, from the driver only.

Why the driver: SQLite allows one writer at a time, and many workers writing one SQLite
file hit "database is locked". Cells therefore log to their own SQLite store (their folder);
after gathering, the driver — a single writer — logs into the project experiment:

    grid:<name>                      parent run: grid settings, conf snapshot, merged tables
      <cell_id>                      one child run per finished cell: axes, runtime params,
                                     wall time
        model|protocol|cohort|trial  one run per fold-metrics row (icb_kedro.hooks.log_fold_runs)

A ledger (``<grid root>/mlflow_ledger.json``) records what was logged where, so a second
invocation logs only new cells. On a cluster, point ``MLFLOW_TRACKING_URI`` at a tracking
server (``mlflow server --backend-store-uri postgresql://... --artifacts-destination ...``, or
``sqlite:///`` on the server's local disk): the driver or the SLURM merge job logs there.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.grid.cells import Grid
from icb_kedro.grid.layout import GridLayout, atomic_write_text
from icb_kedro.grid.manifest import read_done

LEDGER_FILE = "mlflow_ledger.json"
_MAX_PARAM = 6000  # MLflow's param value limit is 6000 characters (3.x)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": "1"}`` (MLflow params are flat strings)."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = (
                json.dumps(value, default=str)[:_MAX_PARAM]
                if not isinstance(value, str)
                else value[:_MAX_PARAM]
            )
    return flat


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide default at ``uri`` (``log_fold_runs`` uses it), then restore."""
    import mlflow

    old = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # also unsets the env var ...
        if old is not None:
            os.environ["MLFLOW_TRACKING_URI"] = old  # ... so put the user's back


def _experiment_id(client: Any, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    artifact_location = None
    if uri.startswith("sqlite:///"):
        # Same place kedro-mlflow uses when run from the project: mlruns/ next to the database.
        artifact_location = (Path(uri[len("sqlite:///") :]).resolve().parent / "mlruns").as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


def _log_params(client: Any, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), 100):  # log_batch takes at most 100 params
        client.log_batch(run_id, params=items[start : start + 100])


def log_grid(
    grid: Grid,
    layout: GridLayout,
    fingerprints: Mapping[str, str],
    report: Any,
    uri: str,
    experiment: str,
) -> str:
    """Log the grid run (created once per config) and every finished cell not logged yet."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from icb_kedro.hooks import log_fold_runs

    root = Path(layout.root)
    ledger_path = root / LEDGER_FILE
    ledger = json.loads(ledger_path.read_text()) if ledger_path.is_file() else {}
    entry_key = f"{uri}|{experiment}|{layout.config_fingerprint}"
    entry = ledger.setdefault(entry_key, {"grid_run_id": None, "cells": {}})

    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(client, experiment, uri)
    grid_run_id = entry["grid_run_id"]
    created = False
    if grid_run_id is not None:
        try:
            client.get_run(grid_run_id)
        except Exception:  # noqa: BLE001 - deleted or another store: start a new grid run
            grid_run_id = None
            entry["cells"] = {}
    if grid_run_id is None:
        run = client.create_run(
            experiment_id,
            run_name=f"grid:{grid.name}",
            tags={"icb_grid": grid.name, "icb_grid_root": str(root), "icb_grid_env": layout.env},
        )
        grid_run_id = run.info.run_id
        _log_params(
            client,
            grid_run_id,
            {
                "grid.name": grid.name,
                "grid.env": layout.env,
                "grid.n_cells": str(len(grid)),
                "grid.cohorts": layout.environ.get("ICB_COHORTS", ""),
                "grid.models": ",".join(
                    sorted({c.model for c in grid.cells if c.model != "prepare"})
                ),
                "grid.config_fingerprint": layout.config_fingerprint,
            },
        )
        client.log_artifacts(grid_run_id, layout.conf_source, artifact_path="conf")
        entry["grid_run_id"] = grid_run_id
        created = True
        atomic_write_text(ledger_path, json.dumps(ledger, indent=1))

    new_cells = 0
    with tracking_uri(uri):
        for cell in grid.cells:
            done = read_done(layout, cell.cell_id)
            if not done or done.get("fingerprint") != fingerprints[cell.cell_id]:
                continue
            stamp = f"{done['fingerprint']}@{done.get('finished_at')}"
            if entry["cells"].get(cell.cell_id) == stamp or "fold_metrics" not in (
                done.get("results") or {}
            ):
                continue
            cell_dir = layout.cell_dir(cell.cell_id)
            tags = {
                "mlflow.parentRunId": grid_run_id,
                "icb_grid": grid.name,
                "cell_id": cell.cell_id,
                "model": cell.model,
                "stage": cell.stage,
                "cell_dir": str(cell_dir),
                # The cell's own kedro-mlflow run (all parameters, artifacts) lives here:
                "cell_tracking_uri": f"sqlite:///{cell_dir / 'mlflow.db'}",
            }
            tags.update(
                {
                    axis: str(v)
                    for axis in ("held_out", "n_bins", "trial")
                    if (v := getattr(cell, axis)) is not None
                }
            )
            run = client.create_run(experiment_id, run_name=cell.cell_id, tags=tags)
            _log_params(client, run.info.run_id, flatten(cell.runtime_params, "runtime."))
            client.log_batch(
                run.info.run_id,
                metrics=[Metric("wall_s", float(done.get("wall_s", math.nan)), 0, 0)],
            )
            table = pd.read_parquet(cell_dir / done["results"]["fold_metrics"])
            log_fold_runs(table, "grid_fold_metrics", run.info.run_id, experiment_id)
            client.set_terminated(run.info.run_id, "FINISHED")
            entry["cells"][cell.cell_id] = stamp
            new_cells += 1
            atomic_write_text(
                ledger_path, json.dumps(ledger, indent=1)
            )  # per cell: a crash never duplicates

    failed = [*report.failed, *report.blocked]
    if not (created or new_cells or failed):
        return grid_run_id  # nothing new since the last invocation: log nothing again

    for kind, table in report.results.items():
        path = layout.results_dir / f"{kind}.csv"
        table.to_csv(path, index=False)
        client.log_artifact(grid_run_id, str(path), artifact_path="results")
    client.log_batch(
        grid_run_id,
        metrics=[
            Metric("cells_done", float(len(entry["cells"])), 0, 0),
            Metric("cells_failed", float(len(failed)), 0, 0),
        ],
    )
    client.set_tag(grid_run_id, "failed_cells", ",".join(failed)[:5000])
    client.set_terminated(grid_run_id, "FAILED" if failed else "FINISHED")
    return grid_run_id
