"""Where the input data lives: one function, used by config (resolver) and pipelines."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "ICB_DATA_DIR"
# Relative to the project root (the folder holding pyproject.toml).
DEFAULT_DATA_DIR = "../shared/data"
EXPRESSION_SUFFIX = ".expression.tsv.gz"
CLINICAL_SUFFIX = ".clinical.tsv"


def project_root() -> Path:
    """The Kedro project root: the nearest parent of the cwd holding pyproject.toml."""
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "conf").is_dir():
            return folder
    # Fall back to the source checkout this package was installed from (editable install).
    return Path(__file__).resolve().parents[2]


def data_dir() -> str:
    """The data directory: ``$ICB_DATA_DIR`` if set, else ``../shared/data`` from
    the project root."""
    configured = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    path = Path(configured).expanduser()
    if not path.is_absolute():
        path = (project_root() / path).resolve()
    return str(path)


def discover_cohorts(directory: str | os.PathLike | None = None) -> list[str]:
    """Cohort names found in ``<data dir>/cohorts`` (one per ``<name>.expression.tsv.gz``).

    Pipelines that need one namespace per held-out cohort call this when they are built,
    so a user adds a cohort by dropping its two files in the folder, with no code change.
    ``ICB_COHORTS`` (comma-separated) restricts the list.
    """
    folder = Path(directory or data_dir()) / "cohorts"
    found = sorted(p.name[: -len(EXPRESSION_SUFFIX)] for p in folder.glob(f"*{EXPRESSION_SUFFIX}"))
    wanted = [c.strip() for c in os.environ.get("ICB_COHORTS", "").split(",") if c.strip()]
    if wanted:
        missing = sorted(set(wanted) - set(found))
        if missing:
            raise ValueError(
                f"ICB_COHORTS names cohorts with no expression file in {folder}: {missing}"
            )
        found = [c for c in found if c in wanted]
    return found


def namespace_for(cohort: str) -> str:
    """Kedro namespace of a held-out cohort's fold pipeline (a valid Python identifier)."""
    return "fold_" + "".join(ch if ch.isalnum() else "_" for ch in cohort)


def ic2bert_model_name(cohort: str) -> str:
    """MLflow registered-model name of a held-out cohort's IC2Bert (the catalog's
    ``{ns}.ic2bert_registered_model`` registers ``icb_ic2bert_{ns}``; a test checks they agree)."""
    return f"icb_ic2bert_{namespace_for(cohort)}"
