"""Typed ``params:grid`` (conf/base/parameters_grid.yml), the grid's settings.

Parsed where the grid reads them (``config.load_settings`` after the ``--set`` overrides,
``cells.build_grid``): unknown keys are refused with the keys allowed there, and the
defaults live here, not in ``.get(key, default)`` calls. The grid then works on
``model_dump(mode="json")`` (plain mappings, hashed into cell fingerprints).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from icb_kedro.config import Config

Axis = Literal["held_out", "n_bins", "trial"]


def _one_is_a_list_of_one(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Selection(Config):
    """Kedro ``session.run`` node selection (names as ``kedro run``'s options); templates
    ``{held_out}`` ``{namespace}`` ``{n_bins}`` ``{trial}`` are filled per cell."""

    tags: tuple[str, ...] | None = None
    node_names: tuple[str, ...] | None = None
    from_nodes: tuple[str, ...] | None = None
    to_nodes: tuple[str, ...] | None = None
    from_inputs: tuple[str, ...] | None = None
    to_outputs: tuple[str, ...] | None = None
    namespaces: tuple[str, ...] | None = None

    @field_validator(
        "tags",
        "node_names",
        "from_nodes",
        "to_nodes",
        "from_inputs",
        "to_outputs",
        "namespaces",
        mode="before",
    )
    @classmethod
    def _scalar(cls, value: Any) -> Any:
        return _one_is_a_list_of_one(value)


class Prepare(Selection):
    """The foundation, once per grid; its ``data/`` outputs are linked into every cell."""

    pipelines: tuple[str, ...] = ()
    link_from: str | None = None  # a project that already ran them (its data/ is linked)
    runtime_params: dict[str, Any] = {}


class Stage(Selection):
    """One stage of a model: a cell per combination of its ``axes``; ``after`` names an
    earlier stage whose cell with the same axis values it reuses."""

    axes: tuple[Axis, ...] = ()
    after: str | None = None
    pipelines: tuple[str, ...] = Field(min_length=1)
    runtime_params: dict[str, Any] = {}  # dotted keys nest; a cell's folds: folds.cells.*
    results: dict[str, str | list[str]] = {}  # kind -> dataset(s) (schema.py columns)
    only_missing_outputs: bool = False

    @model_validator(mode="before")
    @classmethod
    def _slice_inputs_is_gone(cls, data: Any) -> Any:
        if isinstance(data, dict) and "slice_inputs" in data:  # once rewrote a cell's parquet
            raise ValueError(
                "slice_inputs is gone; select the cell's folds with runtime_params "
                '(folds.cells.held_out: ["{held_out}"], folds.cells.trials: ["{trial}"])'
            )
        return data


class ModelGrid(Config):
    enabled: bool = True
    stages: dict[str, Stage] = {}  # in order; an enabled model needs at least one


class Engine(Config):
    """Dask: a scheduler address ($ICB_DASK_SCHEDULER wins) or a LocalCluster."""

    scheduler_address: str | None = None
    n_workers: int = Field(2, ge=1)
    # One cell at a time per worker (its claim, and the cores its session process uses).
    threads_per_worker: Literal[1] = 1
    memory_limit: str | int | float | None = "auto"
    dashboard_address: str | None = None
    retries: int = Field(1, ge=0)  # extra attempts for a cell that raises
    allowed_failures: int = Field(3, ge=0)  # re-runs of a cell whose worker died
    worker_env: dict[str, str | int | float] = {}


class GridMlflow(Config):
    enabled: bool = True  # the driver logs grid -> cell -> fold runs
    experiment: str | None = None  # null = mlflow.yml's tracking.experiment.name


class Slurm(Config):
    """``python -m icb_kedro.grid slurm``: one array task per cell, one array per wave."""

    partition: str | None = None
    account: str | None = None
    time: str | int | None = None  # SLURM accepts minutes as a number too
    cpus_per_task: int | None = Field(None, ge=1)
    mem: str | int | None = None  # e.g. 32G, or megabytes as a number
    gpus: int = Field(0, ge=0)  # --gres=gpu:<n> for model waves; never for the prepare wave
    max_parallel: int = Field(0, ge=0)  # --array=...%max_parallel; 0 = no limit
    python: str = "python"
    setup: tuple[str, ...] = ()
    extra_directives: tuple[str, ...] = ()


class GridConfig(Config):
    """``params:grid``."""

    name: str = "grid"
    workdir: str = "data/09_grid"  # relative to the project root; shared on a cluster
    cohorts: tuple[str, ...] | None = None  # null = every cohort ($ICB_COHORTS restricts)
    trials: int | tuple[int, ...] | None = None  # null = every K-fold trial of folds.lodocv
    n_bins: tuple[int, ...] = ()
    prepare: Prepare = Prepare()
    models: dict[str, ModelGrid] = {}
    engine: Engine = Engine()
    mlflow: GridMlflow = GridMlflow()
    slurm: Slurm = Slurm()

    def settings(self) -> dict[str, Any]:
        """The plain mapping the grid works on (JSON types, every default filled in)."""
        return self.model_dump(mode="json")
