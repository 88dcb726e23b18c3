"""Read the grid settings from the project's Kedro configuration (``parameters_grid.yml``).

The configuration is loaded with the project's own config loader class and arguments
(``settings.CONFIG_LOADER_ARGS``: resolvers for the data directory and MLflow), so the grid
sees exactly the parameters a ``kedro run --env <env>`` would, without starting a session.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icb_kedro.paths import DATA_DIR_ENV, DEFAULT_DATA_DIR, discover_cohorts

SCHEDULER_ENV = "ICB_DASK_SCHEDULER"
PACKAGE_NAME = "icb_kedro"


@dataclass(frozen=True)
class GridSettings:
    """Everything the engine needs from configuration, resolved for one environment."""

    project_root: Path
    env: str
    grid: dict[str, Any]  # GridConfig(...).settings(): every key present
    data_dir: Path
    cohorts: list[str]
    trials: list[int]
    tracking_uri: str
    experiment_name: str
    parameters: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def engine(self) -> dict[str, Any]:
        return dict(self.grid["engine"])

    @property
    def workdir(self) -> Path:
        path = Path(self.grid["workdir"])
        return path if path.is_absolute() else self.project_root / path

    @property
    def name(self) -> str:
        return str(self.grid["name"])

    @property
    def root(self) -> Path:
        """This grid's folder: one sub-folder per cell plus the merged results."""
        return self.workdir / self.name

    def scheduler_address(self) -> str | None:
        """``$ICB_DASK_SCHEDULER`` wins over ``grid.engine.scheduler_address``; None =
        LocalCluster."""
        return os.environ.get(SCHEDULER_ENV) or self.engine["scheduler_address"] or None


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder (from ``start`` or the cwd up) holding pyproject.toml and conf/."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "conf").is_dir():
            return folder
    raise ValueError(f"no Kedro project (pyproject.toml + conf/) at or above {here}")


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``override`` wins, mappings merge key by key."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_loader(conf_source: Path, env: str) -> Any:
    """The project's config loader (class and arguments from ``icb_kedro.settings``)."""
    from kedro.framework.project import configure_project, settings

    configure_project(PACKAGE_NAME)
    return settings.CONFIG_LOADER_CLASS(
        conf_source=str(conf_source), env=env, **settings.CONFIG_LOADER_ARGS
    )


def resolve_data_dir(project_root: Path) -> Path:
    """``$ICB_DATA_DIR``, else ``../shared/data`` relative to the project (``icb_kedro.paths``
    rule)."""
    path = Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()
    return (path if path.is_absolute() else project_root / path).resolve()


def load_settings(
    project_root: Path | str | None = None,
    env: str = "base",
    overrides: Mapping[str, Any] | None = None,
) -> GridSettings:
    """Load ``grid`` parameters (plus ``folds.lodocv``'s trial ids and MLflow settings) for ``env``.

    ``overrides`` is deep-merged into the ``grid`` mapping (CLI flags, tests).
    """
    root = Path(project_root).resolve() if project_root else find_project_root()
    loader = config_loader(root / "conf", env)
    parameters = dict(loader["parameters"])
    if "grid" not in parameters:
        raise ValueError(
            f"no 'grid' parameters in {root / 'conf'} for env {env!r} "
            "(conf/base/parameters_grid.yml)"
        )
    from icb_kedro.grid.parameters import GridConfig

    grid = GridConfig.of(
        deep_merge(parameters["grid"], overrides or {}), "params:grid (with --set)"
    ).settings()

    data_dir = resolve_data_dir(root)
    if not (data_dir / "cohorts").is_dir():
        raise ValueError(f"data directory {data_dir} has no cohorts/ folder (set {DATA_DIR_ENV})")
    available = discover_cohorts(data_dir)
    cohorts = list(grid["cohorts"] or available)
    unknown = sorted(set(cohorts) - set(discover_cohorts_unfiltered(data_dir)))
    if unknown:
        raise ValueError(
            f"grid.cohorts names cohorts with no files in {data_dir / 'cohorts'}: {unknown}"
        )

    from icb_kedro.grid.cells import resolve_trials
    from icb_kedro.schema import PAPER_TRIAL_OFFSET

    lodocv = (parameters.get("folds") or {}).get("lodocv") or {}
    kfold, paper = lodocv.get("kfold") or {}, lodocv.get("paper") or {}
    n_kfold = int(kfold["n_splits"]) * int(kfold["n_repeats"]) if kfold else None
    trials = resolve_trials(grid["trials"], n_kfold)
    existing = set(range(n_kfold or 0)) | {
        PAPER_TRIAL_OFFSET + t for t in range(int(paper.get("n_trials") or 0))
    }
    if n_kfold is not None and not set(trials) <= existing:
        raise ValueError(
            f"grid.trials {sorted(set(trials) - existing)} are not trials of folds.lodocv: K-fold "
            f"trials 0..{n_kfold - 1} (kfold.n_splits x kfold.n_repeats) and 80/20 trials "
            f"{PAPER_TRIAL_OFFSET}.. (paper.n_trials) exist"
        )

    mlflow_cfg = loader["mlflow"] if "mlflow" in loader.config_patterns else {}
    server = mlflow_cfg.get("server") or {}
    tracking_uri = (
        os.environ.get("MLFLOW_TRACKING_URI")
        or server.get("mlflow_tracking_uri")
        or f"sqlite:///{root / 'mlflow.db'}"
    )
    experiment = ((mlflow_cfg.get("tracking") or {}).get("experiment") or {}).get(
        "name"
    ) or PACKAGE_NAME
    experiment = grid["mlflow"]["experiment"] or experiment
    return GridSettings(
        project_root=root,
        env=env,
        grid=grid,
        data_dir=data_dir,
        cohorts=cohorts,
        trials=trials,
        tracking_uri=str(tracking_uri),
        experiment_name=str(experiment),
        parameters=parameters,
    )


def discover_cohorts_unfiltered(data_dir: Path) -> list[str]:
    """Every cohort in the data directory, ignoring ``$ICB_COHORTS``."""
    old = os.environ.pop("ICB_COHORTS", None)
    try:
        return discover_cohorts(data_dir)
    finally:
        if old is not None:
            os.environ["ICB_COHORTS"] = old
