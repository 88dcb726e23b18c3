"""Run the grid on Dask distributed (or sequentially), resume, merge, report.

Each cell is one Dask task (``client.submit``) whose dependencies are the futures of the
cells it needs, so a held-out cohort's pretraining runs once and its fine-tuning cells
start as soon as it is done, on any worker. Dask provides the scheduling, the retries
(``retries=`` for a cell that raises; ``allowed-failures`` for a cell whose worker dies),
and the cluster: a ``LocalCluster`` by default, or any scheduler (``ICB_DASK_SCHEDULER`` /
``grid.engine.scheduler_address``: dask-jobqueue, Kubernetes, ``dask scheduler`` +
``dask worker --nthreads 1``) with a filesystem shared by workers and driver.

Resume: a cell whose ``DONE.json`` carries its current fingerprint is not submitted. A
failed cell is reported with its error while the others finish; cells that need it are
reported as blocked.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.grid.cells import Cell, Grid, build_grid, select_cells
from icb_kedro.grid.config import GridSettings
from icb_kedro.grid.layout import GridLayout, make_layout
from icb_kedro.grid.manifest import (
    cell_fingerprints,
    is_done,
    parameter_fingerprints,
    read_done,
    write_manifest,
)
from icb_kedro.grid.merge import merge_results
from icb_kedro.grid.runner import CellOutcome, run_cell

logger = logging.getLogger(__name__)

CellFunction = Callable[[Cell, GridLayout, Mapping[str, str]], CellOutcome]
ENGINES = ("dask", "sequential")
ERROR_FILE = "ERROR.txt"


@dataclass
class GridReport:
    """What one invocation did, plus the merged tables of every finished cell."""

    grid: str
    root: Path
    engine: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    blocked: dict[str, str] = field(default_factory=dict)
    cell_wall_s: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    results: dict[str, pd.DataFrame] = field(default_factory=dict)
    mlflow_run_id: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked

    def summary(self) -> str:
        lines = [
            f"grid {self.grid} ({self.engine}): {len(self.ran)} ran, {len(self.skipped)} already "
            f"done, {len(self.failed)} failed, {len(self.blocked)} blocked in {self.wall_s:.1f} s; "
            f"results in {self.root / 'results'}"
        ]
        lines += [
            f"  FAILED  {cid}: {err.strip().splitlines()[-1] if err.strip() else err}"
            for cid, err in self.failed.items()
        ]
        lines += [f"  BLOCKED {cid}: {why}" for cid, why in self.blocked.items()]
        if self.mlflow_run_id:
            lines.append(f"  MLflow grid run: {self.mlflow_run_id}")
        return "\n".join(lines)


# ---------------------------------------------------------------- planning


def plan_grid(
    settings: GridSettings, select: Iterable[str] | None = None
) -> tuple[Grid, GridLayout, dict[str, str]]:
    """Selected cells + layout + fingerprints (of every cell); writes ``grid.json``.

    ``grid.json`` (also the SLURM manifest) always lists the WHOLE grid, whatever ``select``
    says: a ``run --cells``/``status --cells`` must not shrink the manifest under queued
    SLURM tasks that look their cell up in it.
    """
    full = build_grid(settings.grid, settings.cohorts, settings.trials)
    layout = make_layout(settings)
    fingerprints = cell_fingerprints(full, layout, parameter_fingerprints(full, layout))
    write_manifest(full, layout, fingerprints)
    return select_cells(full, select), layout, fingerprints


def grid_status(grid: Grid, layout: GridLayout, fingerprints: Mapping[str, str]) -> pd.DataFrame:
    """One row per cell: state ``done`` / ``stale`` (done with another config) / ``failed`` /
    ``pending``."""
    rows = []
    for cell in grid.cells:
        done = read_done(layout, cell.cell_id)
        if done and done.get("fingerprint") == fingerprints[cell.cell_id]:
            state = "done"
        elif (layout.cell_dir(cell.cell_id) / ERROR_FILE).is_file():
            state = "failed"
        elif done:
            state = "stale"
        else:
            state = "pending"
        rows.append(
            {
                "cell_id": cell.cell_id,
                "model": cell.model,
                "stage": cell.stage,
                "held_out": cell.held_out,
                "n_bins": cell.n_bins,
                "trial": cell.trial,
                "state": state,
                "wall_s": (done or {}).get("wall_s") if state == "done" else None,
                "host": (done or {}).get("host") if state == "done" else None,
            }
        )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- executing


def execute_cell(
    cell_fn: CellFunction,
    cell: Cell,
    layout: GridLayout,
    fingerprints: Mapping[str, str],
    *_deps: Any,
) -> CellOutcome:
    """The Dask task: run one cell; on error leave ``ERROR.txt`` in its folder and re-raise.

    ``_deps`` are the dependency cells' outcomes: Dask passes them only to order the tasks.
    """
    error_file = layout.cell_dir(cell.cell_id) / ERROR_FILE
    try:
        outcome = cell_fn(cell, layout, fingerprints)
    except BaseException:
        error_file.parent.mkdir(parents=True, exist_ok=True)
        error_file.write_text(traceback.format_exc())
        raise
    error_file.unlink(missing_ok=True)
    return outcome


def make_client(settings: GridSettings) -> tuple[Any, Any]:
    """``(client, cluster)``: a Client to the configured scheduler, else to a new LocalCluster.

    ``cluster`` is None for an external scheduler (not ours to close).
    """
    import dask
    from distributed import Client, LocalCluster

    engine = settings.engine
    address = settings.scheduler_address()
    if address:
        return Client(address), None
    # threads_per_worker is 1 (grid.parameters.Engine): one cell at a time per worker.
    n_workers = engine["n_workers"]
    # A worker that dies (OOM, segfault, pre-emption) gets its cell re-run elsewhere up to
    # allowed_failures times; that is Dask's own accounting, separate from retries=.
    with dask.config.set({"distributed.scheduler.allowed-failures": engine["allowed_failures"]}):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=engine["memory_limit"],
            dashboard_address=engine["dashboard_address"],
            silence_logs=logging.WARNING,
            # Environment of the worker processes (set by their nannies before any import),
            # e.g. one BLAS/XLA thread each when n_workers already fills the CPU cores.
            env={str(k): str(v) for k, v in engine["worker_env"].items()},
        )
    return Client(cluster), cluster


def _run_sequential(
    cells: list[Cell],
    layout: GridLayout,
    fps: Mapping[str, str],
    cell_fn: CellFunction,
    retries: int,
    progress: bool,
) -> tuple[dict[str, CellOutcome], dict[str, str]]:
    outcomes: dict[str, CellOutcome] = {}
    errors: dict[str, str] = {}
    bar = _progress_bar(len(cells), layout, progress)
    for cell in cells:
        if any(d in errors for d in cell.depends_on):
            errors[cell.cell_id] = "dependency failed"
        else:
            for attempt in range(retries + 1):
                try:
                    outcomes[cell.cell_id] = execute_cell(
                        cell_fn, cell, layout, _cell_fps(cell, fps)
                    )
                    errors.pop(cell.cell_id, None)
                    break
                except Exception:  # noqa: BLE001 - reported per cell; the others go on
                    errors[cell.cell_id] = traceback.format_exc()
                    logger.warning(
                        "grid cell %s failed (attempt %d/%d)",
                        cell.cell_id,
                        attempt + 1,
                        retries + 1,
                    )
        bar.update(1)
        bar.set_postfix(failed=len(errors))
    bar.close()
    return outcomes, errors


def _run_dask(
    cells: list[Cell],
    layout: GridLayout,
    fps: Mapping[str, str],
    cell_fn: CellFunction,
    retries: int,
    progress: bool,
    client: Any,
) -> tuple[dict[str, CellOutcome], dict[str, str]]:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]  # fresh keys per invocation: never reuse a stale erred result
    futures: dict[str, Any] = {}
    for cell in cells:  # dependency order, so dependency futures exist already
        deps = [futures[d] for d in cell.depends_on if d in futures]
        futures[cell.cell_id] = client.submit(
            execute_cell,
            cell_fn,
            cell,
            layout,
            _cell_fps(cell, fps),
            *deps,
            key=f"icb-grid-{cell.cell_id}-{token}",
            retries=retries,
            pure=False,
        )
    by_key = {f.key: cid for cid, f in futures.items()}
    outcomes: dict[str, CellOutcome] = {}
    errors: dict[str, str] = {}
    bar = _progress_bar(len(futures), layout, progress)
    for future in as_completed(list(futures.values())):
        cell_id = by_key[future.key]
        # result(), not a branch on future.status: a future that finished on a worker that has
        # died since reads "lost" with no exception, and result() waits for Dask to recompute it
        # (its dependents need it anyway) where exception() returned None (a flaky crash here).
        try:
            outcomes[cell_id] = future.result()
        except CancelledError:  # the cluster went away (or someone cancelled it)
            errors[cell_id] = f"cancelled by the Dask scheduler (status {future.status})"
        except Exception as exc:  # the cell's own error, re-raised with its remote traceback
            errors[cell_id] = "".join(traceback.format_exception(exc))
        bar.update(1)
        bar.set_postfix(failed=len(errors))
    bar.close()
    return outcomes, errors


def _cell_fps(cell: Cell, fps: Mapping[str, str]) -> dict[str, str]:
    return {k: fps[k] for k in (cell.cell_id, *cell.depends_on)}


def _progress_bar(total: int, layout: GridLayout, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc=f"grid {Path(layout.root).name}", unit="cell", disable=not enabled
    )


def run_grid(
    settings: GridSettings,
    *,
    engine: str = "dask",
    client: Any = None,
    cell_fn: CellFunction = run_cell,
    retries: int | None = None,
    select: Iterable[str] | None = None,
    progress: bool = True,
    log_mlflow: bool | None = None,
) -> GridReport:
    """Run every unfinished cell, merge the results of all finished cells, log them to MLflow.

    ``engine="dask"`` submits cells to ``client`` (or one made by :func:`make_client` and
    closed afterwards); ``"sequential"`` runs them one after the other in this process (the
    reference the distributed run must reproduce). ``cell_fn`` replaces :func:`run_cell`
    (tests inject faults with it). ``select``: glob patterns on cell ids (plus dependencies).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    started = time.perf_counter()
    retries = int(settings.engine["retries"] if retries is None else retries)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    grid, layout, fps = plan_grid(settings, select)
    pending = [c for c in grid.cells if not is_done(layout, c.cell_id, fps[c.cell_id])]
    pending_ids = {c.cell_id for c in pending}
    report = GridReport(
        grid.name,
        Path(layout.root),
        engine,
        skipped=[cid for cid in grid.ids if cid not in pending_ids],
    )
    logger.info("grid %s: %d cells, %d to run", grid.name, len(grid), len(pending))

    if pending:
        if engine == "sequential":
            outcomes, errors = _run_sequential(pending, layout, fps, cell_fn, retries, progress)
        else:
            own_client = client is None
            cluster = None
            if own_client:
                client, cluster = make_client(settings)
            try:
                outcomes, errors = _run_dask(
                    pending, layout, fps, cell_fn, retries, progress, client
                )
            finally:
                if own_client:
                    client.close()
                    if cluster is not None:
                        cluster.close()
        for cell_id, outcome in outcomes.items():
            (report.ran if outcome.status == "done" else report.skipped).append(cell_id)
            report.cell_wall_s[cell_id] = outcome.wall_s
        for cell in pending:  # a cell whose dependency failed is blocked, not failed
            if cell.cell_id not in errors:
                continue
            failed_deps = [d for d in cell.depends_on if d in errors]
            if failed_deps:
                report.blocked[cell.cell_id] = f"dependency failed: {', '.join(failed_deps)}"
            else:
                report.failed[cell.cell_id] = errors[cell.cell_id]

    # Merged and logged over the whole grid, not the selection: a `run --cells` subset must
    # not overwrite results/*.parquet with its part only.
    whole = build_grid(settings.grid, settings.cohorts, settings.trials) if select else grid
    report.results = merge_results(whole, layout, fps)
    use_mlflow = bool(settings.grid["mlflow"]["enabled"]) if log_mlflow is None else log_mlflow
    if use_mlflow and any(len(t) for t in report.results.values()):
        from icb_kedro.grid.tracking import log_grid

        report.mlflow_run_id = log_grid(
            whole, layout, fps, report, settings.tracking_uri, settings.experiment_name
        )
    report.wall_s = time.perf_counter() - started
    logger.info(report.summary())
    return report


# ---------------------------------------------------------------- merging
