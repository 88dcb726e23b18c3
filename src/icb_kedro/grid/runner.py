"""Run one grid cell as a Kedro session in its own project directory.

Layout of a grid (``<workdir>/<name>/``)::

    grid.json                 the cells, their fingerprints and the layout (SLURM tasks read it)
    conf-<hash>/              snapshot of conf/ the cells run with (conf_source)
    pyproject.toml            copied into each cell (Kedro's bootstrap needs it)
    cells/<cell_id>/          one Kedro project directory per cell:
        data/...              dependency outputs as symlinks + the cell's own outputs
        mlflow.db, mlruns/    the cell's own MLflow store (kedro-mlflow run + fold child runs)
        results/<kind>.parquet  the cell's result tables (fold_metrics, predictions, ...)
        DONE.json             written last: the cell finished with this fingerprint
    results/                  merged tables (see icb_kedro.grid.merge.merge_results)

Why one directory per cell: relative catalog paths resolve against the project path, so
every cell writes its checkpoints, predictions and MLflow records under its own folder and
cannot clobber another cell, with no change to any pipeline's catalog. Pretraining outputs
reach the fine-tuning cells of the same held-out cohort as symlinks (one pretraining per
cohort and bin count, reused by every trial).

MLflow: each cell logs to its own SQLite file (copied from an empty template, so no cell
pays the ~15 s schema creation), hence concurrent cells never share a SQLite writer. The
driver merges results into the project's experiment afterwards (icb_kedro.grid.tracking).

A cell's Kedro session runs in a child process started in the cell's folder with the
cell's environment (``icb_kedro.grid.cell_session``): the worker's own working directory,
environment, ``sys.path`` and MLflow state never change. A worker process still runs one
cell at a time (``_CELL_LOCK``); parallelism comes from several workers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.grid.cell_session import run_in_child
from icb_kedro.grid.cells import Cell
from icb_kedro.grid.layout import DONE_FILE, CellError, GridLayout, atomic_write_text
from icb_kedro.grid.manifest import is_done, read_done
from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS

logger = logging.getLogger(__name__)

RESULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "fold_metrics": FOLD_METRIC_COLUMNS,
    "predictions": PREDICTION_COLUMNS,
}
#: One cell at a time per worker process (its claim file names this process).
_CELL_LOCK = threading.Lock()


@dataclass(frozen=True)
class CellOutcome:
    """What a cell task returns to the driver (small: the tables stay on disk)."""

    cell_id: str
    status: str  # "done" | "skipped" (already done with the same fingerprint)
    wall_s: float
    rows: dict[str, int] = field(default_factory=dict)
    host: str = ""


# ---------------------------------------------------------------- layout and fingerprints


# ---------------------------------------------------------------- done markers


# ---------------------------------------------------------------- running a cell


def run_cell(cell: Cell, layout: GridLayout, fingerprints: Mapping[str, str]) -> CellOutcome:
    """Run ``cell`` unless it is already done with the same fingerprint; write results + DONE.json.

    ``fingerprints`` holds at least the cell's and its dependencies' fingerprints. Safe to
    call again after a crash: the cell folder is rebuilt from scratch (its pretraining
    checkpoints kept, to resume from), and the done-marker is written last. One process at
    a time runs a cell (``_claim_cell``).
    """
    with _CELL_LOCK:
        expected = fingerprints[cell.cell_id]
        skipped = _skipped_if_done(layout, cell.cell_id, expected)
        if skipped is not None:
            return skipped
        for dep in cell.depends_on:
            if not is_done(layout, dep, fingerprints[dep]):
                raise CellError(
                    f"cell {cell.cell_id!r}: dependency {dep!r} has not finished (no matching "
                    f"{DONE_FILE})"
                )

        with _claim_cell(layout, cell.cell_id):
            return _run_claimed_cell(cell, layout, expected)


def _skipped_if_done(layout: GridLayout, cell_id: str, expected: str) -> CellOutcome | None:
    """The "skipped" outcome of a cell already done with this fingerprint, else None."""
    done = read_done(layout, cell_id)
    if done and done.get("fingerprint") == expected:
        return CellOutcome(
            cell_id,
            "skipped",
            float(done.get("wall_s", 0.0)),
            dict(done.get("rows", {})),
            done.get("host", ""),
        )
    return None


def _run_claimed_cell(cell: Cell, layout: GridLayout, expected: str) -> CellOutcome:
    """The body of ``run_cell``, once this process holds the cell's claim."""
    skipped = _skipped_if_done(
        layout, cell.cell_id, expected
    )  # another process may have finished it meanwhile
    if skipped is not None:
        return skipped
    cell_dir = layout.cell_dir(cell.cell_id)
    kept = _set_aside_checkpoints(layout, cell.cell_id)
    shutil.rmtree(cell_dir, ignore_errors=True)
    _make_skeleton(cell_dir, layout)
    _restore_checkpoints(kept, cell_dir)
    linked: dict[str, Path] = {}
    if cell.link_from:
        source = Path(cell.link_from) / "data"
        if not source.is_dir():
            raise CellError(
                f"cell {cell.cell_id!r}: grid.prepare.link_from has no data/ folder: {source}"
            )
        linked.update(_link_tree(source, cell_dir / "data", exclude=Path(layout.root).parent))
    for dep in cell.depends_on:
        linked.update(_link_tree(layout.cell_dir(dep) / "data", cell_dir / "data"))

    started = time.perf_counter()
    environ = {**layout.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cell_dir / 'mlflow.db'}"}
    results = run_in_child(cell, layout, cell_dir, linked, environ) if cell.pipelines else {}
    wall_s = time.perf_counter() - started

    rows = _write_results(cell, cell_dir, results)
    marker = {
        "cell_id": cell.cell_id,
        "fingerprint": expected,
        "wall_s": round(wall_s, 3),
        "finished_at": datetime.now(UTC).isoformat(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "results": {kind: f"results/{kind}.parquet" for kind in rows},
        "rows": rows,
    }
    atomic_write_text(layout.done_path(cell.cell_id), json.dumps(marker, indent=1))
    logger.info("grid cell %s done in %.1f s (%s)", cell.cell_id, wall_s, rows)
    return CellOutcome(cell.cell_id, "done", wall_s, rows, marker["host"])


#: Resumable pretraining checkpoints inside a cell (``ic2bert_pretrain.checkpoint_dir`` =
#: data/06_models/ic2bert, one ``<namespace>/pretrain/<run fingerprint>/`` per run).
CHECKPOINT_GLOB = "data/06_models/ic2bert/*/pretrain"


def _claim_path(layout: GridLayout, cell_id: str) -> Path:
    return Path(layout.root) / "cells" / ".claims" / f"{cell_id}.json"


@contextmanager
def _claim_cell(layout: GridLayout, cell_id: str) -> Iterator[None]:
    """Exclusive claim on a cell across processes and hosts (an ``O_EXCL`` file).

    Two runs of one cell (a resubmitted SLURM array while the first still runs, two ``grid
    run`` invocations, a Dask task duplicated after a worker time-out) would otherwise share
    one folder, the second deleting the first's files mid-run. A claim left by a process
    that died on this host is taken over; one held on another host is refused, naming the
    file to delete if that job is known to be gone.
    """
    path = _claim_path(layout, cell_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
    }
    for _ in range(2):
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text() or "{}")
            except (OSError, json.JSONDecodeError):
                holder = {}
            if holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", -1))):
                logger.warning(
                    "grid cell %s: taking over the claim of dead process %s",
                    cell_id,
                    holder.get("pid"),
                )
                path.unlink(missing_ok=True)
                continue
            raise CellError(
                f"cell {cell_id!r} is already running (claimed by host {holder.get('host')!r}, pid "
                f"{holder.get('pid')}, SLURM job {holder.get('slurm_job_id') or '-'}); if that job "
                f"is gone, delete {path}"
            ) from None
        with os.fdopen(handle, "w") as claim:
            json.dump(me, claim)
        break
    else:  # pragma: no cover - the dead holder's file reappeared twice
        raise CellError(f"cell {cell_id!r}: could not claim {path}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set_aside_checkpoints(layout: GridLayout, cell_id: str) -> tuple[Path, list[Path]]:
    """Move a re-run cell's pretraining checkpoints out of the folder about to be rebuilt.

    A killed or pre-empted pretraining cell then resumes from its last epoch instead of
    epoch 0; the checkpoints are keyed by run fingerprint, so a changed run never resumes
    from them (``ic2bert_pretrain.nodes.pretrain_fold``).
    """
    cell_dir = layout.cell_dir(cell_id)
    keep_root = Path(layout.root) / "cells" / ".resume" / cell_id
    if keep_root.is_dir():  # set aside by an attempt that died before restoring them
        return keep_root, [
            p.relative_to(keep_root) for p in sorted(keep_root.glob(CHECKPOINT_GLOB))
        ]
    kept = []
    for folder in sorted(cell_dir.glob(CHECKPOINT_GLOB)) if cell_dir.is_dir() else []:
        if folder.is_dir() and not folder.is_symlink():
            relative = folder.relative_to(cell_dir)
            (keep_root / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(folder), keep_root / relative)
            kept.append(relative)
    return keep_root, kept


def _restore_checkpoints(aside: tuple[Path, list[Path]], cell_dir: Path) -> None:
    keep_root, kept = aside
    for relative in kept:
        (cell_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(keep_root / relative), cell_dir / relative)
        logger.info(
            "grid cell %s: kept its pretraining checkpoints (%s) to resume from",
            cell_dir.name,
            relative,
        )
    shutil.rmtree(keep_root, ignore_errors=True)


def _make_skeleton(cell_dir: Path, layout: GridLayout) -> None:
    (cell_dir / "src").mkdir(parents=True)  # bootstrap_project wants source_dir to exist
    # conf/ makes the cell folder a Kedro project of its own: icb_kedro.paths.project_root()
    # (cwd-based; e.g. IC2Bert's checkpoint_dir) then resolves here, not in the main
    # project, and `cd cells/<id> && kedro run ...` works for debugging one cell.
    os.symlink(Path(layout.conf_source).resolve(), cell_dir / "conf")
    (cell_dir / "data").mkdir()
    (cell_dir / "results").mkdir()
    shutil.copy(Path(layout.root) / "pyproject.toml", cell_dir / "pyproject.toml")
    if layout.mlflow_template:
        shutil.copy(layout.mlflow_template, cell_dir / "mlflow.db")


def _link_tree(source: Path, target: Path, exclude: Path | None = None) -> dict[str, Path]:
    """Symlink every file under ``source`` (following its links) to the same place under ``target``.

    Returns ``{path relative to target: real file}``.
    """
    linked: dict[str, Path] = {}
    # Skip ``exclude`` (the grid workdir) only where it lies inside ``source`` (link_from = the
    # main project, whose data/ holds the grid itself); a source inside the workdir is fine.
    exclude = exclude.resolve() if exclude else None
    if exclude is not None and source.resolve() not in exclude.parents:
        exclude = None
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        here = Path(dirpath)
        if exclude is not None and (here.resolve() == exclude or exclude in here.resolve().parents):
            dirnames[:] = []
            continue
        rel_dir = here.relative_to(source)
        (target / rel_dir).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            real = (here / name).resolve()
            if not real.is_file():
                continue
            link = target / rel_dir / name
            if link.is_symlink() or link.exists():
                link.unlink()
            os.symlink(real, link)
            linked[(rel_dir / name).as_posix()] = real
    return linked


def _write_results(cell: Cell, cell_dir: Path, results: Mapping[str, Any]) -> dict[str, int]:
    rows: dict[str, int] = {}
    for kind, table in results.items():
        if not isinstance(table, pd.DataFrame):
            raise CellError(
                f"cell {cell.cell_id!r}: result {kind!r} is a {type(table).__name__}, "
                "not a DataFrame"
            )
        _validate_result(cell, kind, table)
        table.to_parquet(cell_dir / "results" / f"{kind}.parquet", index=False)
        rows[kind] = len(table)
    return rows


def _validate_result(cell: Cell, kind: str, table: pd.DataFrame) -> None:
    """Result tables follow schema.py and belong to this cell (no duplicated folds in the merge)."""
    required = RESULT_COLUMNS.get(kind)
    if required is None:
        return
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise CellError(f"cell {cell.cell_id!r}: result {kind!r} lacks columns {missing}")
    if table.empty:
        raise CellError(f"cell {cell.cell_id!r}: result {kind!r} is empty")
    if cell.held_out is not None and set(table["cohort"]) != {cell.held_out}:
        raise CellError(
            f"cell {cell.cell_id!r}: result {kind!r} has cohorts {sorted(set(table['cohort']))}, "
            f"expected only {cell.held_out!r}; restrict the stage to this held-out cohort "
            "(namespaces / runtime_params folds.cells)"
        )
    if (
        cell.trial is not None
        and "trial" in table.columns
        and set(table["trial"].astype(int)) != {cell.trial}
    ):
        raise CellError(
            f"cell {cell.cell_id!r}: result {kind!r} has trials {sorted(set(table['trial']))}, "
            f"expected only {cell.trial}"
        )
