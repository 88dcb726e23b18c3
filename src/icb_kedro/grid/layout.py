"""Where a grid lives (``GridLayout``: root, conf snapshot, environment of its cells) and
what it is made from: the layout, the conf/data fingerprint, the MLflow template store,
the cell error type and atomic text writes."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from icb_kedro.grid.cells import fingerprint

DONE_FILE = "DONE.json"


MANIFEST_FILE = "grid.json"


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


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
