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
    results/                  merged tables (see icb_kedro.grid.dask_runner.merge_results)

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

import copy
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.grid.cell_session import run_in_child
from icb_kedro.grid.cells import Cell, Grid, fingerprint
from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS

logger = logging.getLogger(__name__)

DONE_FILE = "DONE.json"
MANIFEST_FILE = "grid.json"
RESULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "fold_metrics": FOLD_METRIC_COLUMNS,
    "predictions": PREDICTION_COLUMNS,
}
_CELL_LOCK = threading.Lock()
_PARQUET_TYPES = {
    "pandas.ParquetDataset",
    "kedro_datasets.pandas.ParquetDataset",
    "icb_kedro.datasets.ParquetDataset",
}


class CellError(RuntimeError):
    """A cell could not run or broke the isolation contract (message names the cell)."""


@dataclass(frozen=True)
class GridLayout:
    """Where a grid lives and what every cell shares (JSON-able: SLURM tasks rebuild it)."""

    root: str
    conf_source: str
    env: str
    environ: dict[str, str] = field(default_factory=dict)
    mlflow_template: str | None = None
    config_fingerprint: str = ""

    def cell_dir(self, cell_id: str) -> Path:
        return Path(self.root) / "cells" / cell_id

    def done_path(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / DONE_FILE

    @property
    def results_dir(self) -> Path:
        return Path(self.root) / "results"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GridLayout:
        return cls(**data)


@dataclass(frozen=True)
class CellOutcome:
    """What a cell task returns to the driver (small: the tables stay on disk)."""

    cell_id: str
    status: str  # "done" | "skipped" (already done with the same fingerprint)
    wall_s: float
    rows: dict[str, int] = field(default_factory=dict)
    host: str = ""


# ---------------------------------------------------------------- layout and fingerprints


def tree_fingerprint(
    folder: Path, *, content: bool, skip: tuple[str, ...] = (), skip_names: tuple[str, ...] = ()
) -> str:
    """Hash of a folder's files: content hashes (config) or name/size/mtime (large data).

    ``skip``: top-level sub-folders to ignore; ``skip_names``: file-name prefixes to ignore.
    """
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.split("/", 1)[0] in skip or path.name.startswith(skip_names):
            continue
        digest.update(rel.encode())
        if content:
            digest.update(path.read_bytes())
        else:
            stat = path.stat()
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def mlflow_template_db(folder: Path) -> Path:
    """An empty MLflow SQLite store (schema created once, then copied into each cell)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    path = folder / f".mlflow-template-{mlflow.__version__}.db"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".mlflow-template-{os.getpid()}-{threading.get_ident()}.db"
    tmp.unlink(missing_ok=True)
    MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments()  # creates the schema
    os.replace(tmp, path)  # atomic: concurrent creators leave one valid file
    return path


def make_layout(settings: Any) -> GridLayout:
    """Create the grid folder: conf snapshot, pyproject copy, MLflow template (``GridSettings``
    in)."""
    root = Path(settings.root)
    root.mkdir(parents=True, exist_ok=True)
    conf = Path(settings.project_root) / "conf"
    # The grid's own parameters reach cells only through their specs (hashed per cell), so
    # editing them (workers, retries, more trials) must not invalidate finished cells.
    conf_hash = tree_fingerprint(
        conf, content=True, skip=("local",), skip_names=("parameters_grid",)
    )
    # Parameters enter each cell's fingerprint per stage (parameter_fingerprints): changing
    # AMU's parameters does not invalidate IC2Bert cells. Everything else in conf/ does.
    structure_hash = tree_fingerprint(
        conf, content=True, skip=("local",), skip_names=("parameters",)
    )
    snapshot = root / f"conf-{conf_hash[:12]}"
    if not snapshot.is_dir():
        tmp = root / f".conf-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(conf, tmp, ignore=shutil.ignore_patterns("local"))
        (tmp / "local").mkdir(exist_ok=True)
        os.replace(tmp, snapshot)
    shutil.copy(Path(settings.project_root) / "pyproject.toml", root / "pyproject.toml")
    data_hash = tree_fingerprint(Path(settings.data_dir), content=False)
    environ = {
        "ICB_DATA_DIR": str(settings.data_dir),
        "ICB_COHORTS": ",".join(settings.cohorts),
        "KEDRO_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "MPLBACKEND": "Agg",
    }
    return GridLayout(
        root=str(root),
        conf_source=str(snapshot),
        env=settings.env,
        environ=environ,
        mlflow_template=str(mlflow_template_db(Path(settings.workdir))),
        config_fingerprint=fingerprint(structure_hash, data_hash, settings.env, environ),
    )


def cell_fingerprints(
    grid: Grid, layout: GridLayout, parameter_fps: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Per cell: hash of its spec, the config/data fingerprint, the parameters its pipelines
    read (``parameter_fps`` by ``model.stage``) and its dependencies' fingerprints."""
    fps: dict[str, str] = {}
    parameter_fps = parameter_fps or {}
    for cell in grid.cells:
        fps[cell.cell_id] = fingerprint(
            cell.spec_hash(),
            layout.config_fingerprint,
            parameter_fps.get(f"{cell.model}.{cell.stage}", ""),
            [fps[d] for d in cell.depends_on],
        )
    return fps


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pipeline_parameter_keys(pipeline_names: tuple[str, ...], layout: GridLayout) -> set[str] | None:
    """Top-level parameter keys the registered pipelines read (``params:<key>...`` inputs).

    None when a pipeline reads all ``parameters`` or cannot be built (then every
    parameter counts). Pipelines are built with the cells' environment (cohort list).
    """
    from kedro.framework.project import configure_project, pipelines

    keys: set[str] = set()
    try:
        with _environ(layout.environ):
            configure_project("icb_kedro")
            pipelines.set_requested(list(pipeline_names))
            for name in pipeline_names:
                for dataset in pipelines[name].inputs():
                    if dataset == "parameters":
                        return None
                    if dataset.startswith("params:"):
                        keys.add(dataset[len("params:") :].split(".", 1)[0])
    except Exception:  # noqa: BLE001 - a pipeline under construction: fall back to all parameters
        logger.warning(
            "grid: cannot build pipelines %s; every parameter counts for their cells",
            pipeline_names,
            exc_info=True,
        )
        return None
    return keys


def parameter_fingerprints(grid: Grid, layout: GridLayout) -> dict[str, str]:
    """Per ``model.stage``: hash of the resolved parameters its pipelines read."""
    with _environ(layout.environ):
        parameters = cell_config(layout, "parameters")
    out: dict[str, str] = {}
    for cell in grid.cells:
        key = f"{cell.model}.{cell.stage}"
        if key in out or not cell.pipelines:
            continue
        used = pipeline_parameter_keys(cell.pipelines, layout)
        chosen = parameters if used is None else {k: parameters.get(k) for k in sorted(used)}
        out[key] = fingerprint(chosen)
    return out


def write_manifest(grid: Grid, layout: GridLayout, fingerprints: Mapping[str, str]) -> Path:
    """``grid.json``: everything a SLURM task needs to run a cell by index."""
    payload = {
        "name": grid.name,
        "layout": layout.to_dict(),
        "cells": [c.to_dict() for c in grid.cells],
        "fingerprints": dict(fingerprints),
        "waves": [[c.cell_id for c in wave] for wave in grid.waves()],
    }
    path = Path(layout.root) / MANIFEST_FILE
    _atomic_write_text(path, json.dumps(payload, indent=1, default=str))
    return path


def read_manifest(root: Path | str) -> tuple[Grid, GridLayout, dict[str, str], list[list[str]]]:
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(
            f"no grid manifest at {path}: run `python -m icb_kedro.grid slurm` (or run) first"
        )
    payload = json.loads(path.read_text())
    grid = Grid(payload["name"], tuple(Cell.from_dict(c) for c in payload["cells"]))
    return grid, GridLayout.from_dict(payload["layout"]), payload["fingerprints"], payload["waves"]


# ---------------------------------------------------------------- done markers


def read_done(layout: GridLayout, cell_id: str) -> dict[str, Any] | None:
    path = layout.done_path(cell_id)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a torn marker (killed mid-write) counts as not done


def is_done(layout: GridLayout, cell_id: str, fingerprint_: str) -> bool:
    done = read_done(layout, cell_id)
    return bool(done) and done.get("fingerprint") == fingerprint_


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
    results = (
        run_in_child(cell, layout, cell_dir, linked, environ)
        if cell.pipelines or cell.slice_inputs
        else {}
    )
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
    _atomic_write_text(layout.done_path(cell.cell_id), json.dumps(marker, indent=1))
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


@lru_cache(maxsize=8)
def _cached_config(conf_source: str, env: str, key: str, data_dir: str | None) -> dict[str, Any]:
    """Resolved ``catalog`` / ``parameters`` of a conf snapshot (immutable: named by its hash).

    ``data_dir`` ($ICB_DATA_DIR) is part of the key because the globals resolve it.
    """
    from icb_kedro.grid.config import config_loader

    return dict(config_loader(Path(conf_source), env)[key])


def cell_config(layout: GridLayout, key: str) -> dict[str, Any]:
    return _cached_config(str(layout.conf_source), layout.env, key, os.environ.get("ICB_DATA_DIR"))


def env_parameter_keys(conf_source: Path, env: str) -> set[str]:
    """Top-level parameter keys defined by the files of one config environment itself."""
    import yaml

    keys: set[str] = set()
    for path in (Path(conf_source) / env).rglob("parameters*"):
        if path.is_file() and path.suffix in (".yml", ".yaml"):
            keys.update((yaml.safe_load(path.read_text()) or {}).keys())
    return keys


def full_runtime_params(cell: Cell, layout: GridLayout) -> dict[str, Any]:
    """The cell's runtime params, completed where Kedro would otherwise drop base parameters.

    Kedro (1.7) merges runtime params into each environment's parameters, then merges the
    environments per top-level key, destructively. With ``env != base`` a runtime param such
    as ``ingestion.cohorts`` for a block the env does not define would become the env's whole
    ``ingestion`` block and replace base's. For such blocks the full base block is passed,
    deep-merged with the override; blocks the env defines in full are left to Kedro.
    """
    if not cell.runtime_params or layout.env == "base":
        return dict(cell.runtime_params)
    from icb_kedro.grid.config import deep_merge

    own_keys = env_parameter_keys(Path(layout.conf_source), layout.env)
    completed: dict[str, Any] = {}
    for key, value in cell.runtime_params.items():
        if key in own_keys or not isinstance(value, Mapping):
            completed[key] = value
            continue
        base = copy.deepcopy(cell_config(layout, "parameters").get(key))
        completed[key] = deep_merge(base, value) if isinstance(base, Mapping) else value
    return completed


def _slice_inputs(cell: Cell, layout: GridLayout, cell_dir: Path, linked: dict[str, Path]) -> None:
    """Replace linked parquet inputs by the rows of this cell (e.g. ``lodocv_folds`` of one trial).

    This is how a pipeline that loops over every fold of its input runs one cell's folds
    only, with no parameter of its own for that.
    """
    if not cell.slice_inputs:
        return
    from kedro.io.catalog_config_resolver import CatalogConfigResolver

    # Resolves plain entries and dataset factories ("lodocv_folds_{cohort}") alike.
    resolver = CatalogConfigResolver(config=copy.deepcopy(cell_config(layout, "catalog")))
    for dataset, filters in cell.slice_inputs.items():
        where = f"cell {cell.cell_id!r}: slice_inputs.{dataset}"
        entry = resolver.resolve_pattern(dataset)
        if not entry or "MemoryDataset" in str(entry.get("type")):
            raise CellError(f"{where}: no such dataset in the catalog")
        if entry.get("type") not in _PARQUET_TYPES or "filepath" not in entry:
            raise CellError(
                f"{where}: only pandas.ParquetDataset inputs can be sliced, got {entry.get('type')}"
            )
        rel = Path(entry["filepath"])
        if rel.is_absolute():
            raise CellError(
                f"{where}: filepath {rel} is outside the project; only project data can be sliced"
            )
        path = cell_dir / rel
        key = path.relative_to(cell_dir / "data").as_posix() if rel.parts[:1] == ("data",) else None
        if key not in linked:
            raise CellError(f"{where}: {rel} is not an output of a dependency of this cell")
        table = pd.read_parquet(path)
        keep = pd.Series(True, index=table.index)
        for column, wanted in filters.items():
            if column not in table.columns:
                raise CellError(f"{where}: column {column!r} not in {list(table.columns)}")
            values = wanted if isinstance(wanted, list) else [wanted]
            keep &= table[column].isin(values)
        if not keep.any():
            raise CellError(f"{where}: no row matches {filters}")
        path.unlink()
        table[keep].reset_index(drop=True).to_parquet(path)
        del linked[key]


def _run_session(cell: Cell, layout: GridLayout, cell_dir: Path) -> dict[str, Any]:
    """One Kedro session for the cell; returns its result tables by kind."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.pipeline import Pipeline

    bootstrap_project(cell_dir)
    with KedroSession.create(
        project_path=cell_dir,
        env=layout.env,
        conf_source=layout.conf_source,
        runtime_params=full_runtime_params(cell, layout) or None,
    ) as session:
        pipelines.set_requested(list(cell.pipelines))
        context = session.load_context()
        missing = [p for p in cell.pipelines if p not in pipelines]
        if missing:
            raise CellError(
                f"cell {cell.cell_id!r}: pipelines {missing} are not registered (have "
                f"{sorted(pipelines)})"
            )
        selected = sum((pipelines[p] for p in cell.pipelines), Pipeline([])).filter(
            **{
                ("node_namespaces" if k == "namespaces" else k): v
                for k, v in cell.selection.items()
            }
        )
        if not selected.nodes:
            raise CellError(
                f"cell {cell.cell_id!r}: the selection {cell.selection} of {cell.pipelines} "
                "has no nodes"
            )
        _guard_overwrites(cell, selected, context.catalog)
        outputs = session.run(
            pipeline_names=list(cell.pipelines),
            only_missing_outputs=cell.only_missing_outputs,
            **cell.selection,
        )
        results = {
            kind: _load_results(cell, names, outputs, context.catalog)
            for kind, names in cell.results.items()
        }
    if "predictions" in results and "fold_metrics" not in results:
        # Per-fold outputs only (the cross-fold nodes are outside the cell): score them with
        # the one shared evaluation module, as the model's own fold_metrics node would.
        from icb_kedro.evaluation.summary import fold_metrics

        results["fold_metrics"] = fold_metrics(results["predictions"])
    return results


def _guard_overwrites(cell: Cell, selected: Any, catalog: Any) -> None:
    """Refuse to run a node that would write over a dependency's output (shared via symlink).

    Before the run only dependency outputs (and sliced inputs) exist in a fresh cell folder,
    so an output that already exists belongs to another cell.
    """
    clashes = []
    for node in selected.nodes:
        persisted = [
            o
            for o in node.outputs
            if o in catalog and not getattr(catalog.get(o), "_EPHEMERAL", False)
        ]
        existing = [o for o in persisted if _exists(catalog, o)]
        if not existing:
            continue
        if cell.only_missing_outputs and len(existing) == len(persisted):
            continue  # Kedro skips it (all persistent outputs exist)
        clashes.append(f"{node.name} -> {existing}")
    if clashes:
        raise CellError(
            f"cell {cell.cell_id!r} would overwrite outputs of its dependencies: {clashes}. Narrow "
            "the stage's node selection (namespaces / tags / from_inputs / node_names) so it only "
            "runs its own nodes."
        )


def _exists(catalog: Any, name: str) -> bool:
    """``catalog.exists`` that treats datasets unable to answer before a run (MLflow metrics) as
    absent."""
    try:
        return bool(catalog.exists(name))
    except Exception:  # noqa: BLE001 - e.g. kedro-mlflow metrics: "Cannot find run id" outside a run
        return False


def _load_results(
    cell: Cell, names: str | list[str], outputs: Mapping[str, Any], catalog: Any
) -> Any:
    """One dataset, or the concatenation of several (e.g. per-protocol prediction tables)."""
    if isinstance(names, str):
        return _load_result(cell, names, outputs, catalog)
    tables = [_load_result(cell, name, outputs, catalog) for name in names]
    return pd.concat(tables, ignore_index=True)


def _load_result(cell: Cell, name: str, outputs: Mapping[str, Any], catalog: Any) -> Any:
    if name in outputs:
        value = outputs[name]
        return value.load() if hasattr(value, "load") else value
    if name in catalog and _exists(catalog, name):
        return catalog.load(name)
    raise CellError(
        f"cell {cell.cell_id!r}: result dataset {name!r} was not produced by the run nor "
        "found on disk"
    )


def _stat_targets(paths: Any) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in paths}


def _check_targets_untouched(cell: Cell, before: Mapping[Path, tuple[int, int]]) -> None:
    changed = [
        str(p)
        for p, stat in before.items()
        if not p.is_file() or (p.stat().st_size, p.stat().st_mtime_ns) != stat
    ]
    if changed:
        raise CellError(
            f"cell {cell.cell_id!r} modified files of its dependencies through symlinks: "
            f"{changed[:5]}"
        )


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
            "(namespaces / slice_inputs)"
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


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
