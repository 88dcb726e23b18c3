"""The LODOCV grid as data: cells (held-out cohort x trial x n_bins x model stage) with stable ids.

A *cell* is one independent unit of work: one Kedro session that runs a selection of
registered pipelines (by name, namespace, tags, ...) with runtime parameters, in its own
project directory. The grid depends on the model pipelines only through that Kedro
surface, declared in ``conf/<env>/parameters_grid.yml`` (key ``grid``):

- ``prepare``: the foundation (ingestion -> harmonization -> folds), run once per grid;
  every other cell sees its persisted outputs.
- ``models.<model>.stages.<stage>``: ordered stages of a model, e.g. IC2Bert ``pretrain``
  (axes ``held_out, n_bins``: once per held-out cohort and bin count, reused by its trials)
  and ``finetune`` (axes ``held_out, n_bins, trial``, ``after: pretrain``). A stage's cells are
  the product of its axes; a cell depends on the ``prepare`` cell and on the cell of its
  ``after`` stage with the same axis values.

Strings in ``runtime_params``, ``namespaces`` and ``results`` are templates
filled per cell: ``{held_out}``, ``{namespace}`` (``icb_kedro.paths.namespace_for``),
``{trial}``, ``{n_bins}``. A string that is exactly one placeholder keeps the value's type
(``"{trial}"`` -> ``0``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import product
from typing import Any

from icb_kedro.grid.parameters import GridConfig, Selection
from icb_kedro.grid.templating import fill_template, nest_dotted
from icb_kedro.paths import namespace_for

AXES: tuple[str, ...] = ("held_out", "n_bins", "trial")
PREPARE_ID = "prepare"
# Kedro session.run selection arguments a stage may set (names as in KedroSession.run).
SELECTION_KEYS: tuple[str, ...] = tuple(Selection.model_fields)
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Cell:
    """One grid cell: what to run (Kedro selection + params) and what it needs and returns."""

    cell_id: str
    model: str
    stage: str
    held_out: str | None = None
    n_bins: int | None = None
    trial: int | None = None
    pipelines: tuple[str, ...] = ()
    selection: dict[str, list[str]] = field(default_factory=dict, hash=False)
    runtime_params: dict[str, Any] = field(default_factory=dict, hash=False)
    # kind -> dataset name, or a list of names concatenated (fold_metrics / predictions follow
    # schema.py; with predictions only, fold_metrics is derived by evaluation.summary).
    results: dict[str, str | list[str]] = field(default_factory=dict, hash=False)
    only_missing_outputs: bool = False
    depends_on: tuple[str, ...] = ()
    # prepare only: an existing Kedro project whose data/ already holds the foundation outputs.
    link_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        data = dict(data)
        data["pipelines"] = tuple(data.get("pipelines", ()))
        data["depends_on"] = tuple(data.get("depends_on", ()))
        return cls(**data)

    def spec_hash(self) -> str:
        """Hash of everything that defines the cell's work (not where it runs)."""
        return _hash(self.to_dict())


@dataclass(frozen=True)
class Grid:
    """Every cell of a grid in dependency order (a dependency always precedes its dependents)."""

    name: str
    cells: tuple[Cell, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for cell in self.cells:
            if cell.cell_id in seen:
                raise ValueError(f"grid {self.name!r}: duplicate cell id {cell.cell_id!r}")
            missing = [d for d in cell.depends_on if d not in seen]
            if missing:
                raise ValueError(
                    f"grid {self.name!r}: cell {cell.cell_id!r} depends on {missing}, not "
                    "defined before it"
                )
            seen.add(cell.cell_id)

    def __len__(self) -> int:
        return len(self.cells)

    def __getitem__(self, cell_id: str) -> Cell:
        for cell in self.cells:
            if cell.cell_id == cell_id:
                return cell
        raise KeyError(f"grid {self.name!r} has no cell {cell_id!r}")

    @property
    def ids(self) -> list[str]:
        return [c.cell_id for c in self.cells]

    def waves(self) -> list[list[Cell]]:
        """Cells grouped by dependency depth: wave k only depends on waves < k (SLURM arrays)."""
        depth: dict[str, int] = {}
        for cell in self.cells:
            depth[cell.cell_id] = 1 + max((depth[d] for d in cell.depends_on), default=-1)
        waves: list[list[Cell]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for cell in self.cells:
            waves[depth[cell.cell_id]].append(cell)
        return waves

    def dependents(self, cell_id: str) -> list[str]:
        """Every cell that (transitively) depends on ``cell_id``."""
        found: list[str] = []
        frontier = {cell_id}
        for cell in self.cells:
            if frontier & set(cell.depends_on):
                found.append(cell.cell_id)
                frontier.add(cell.cell_id)
        return found


def make_cell_id(
    model: str, stage: str, held_out: str | None, n_bins: int | None, trial: int | None
) -> str:
    """Stable, readable, filesystem-safe id, e.g.
    ``ic2bert.finetune.Melanoma_PD1_Hugo2016.nb4.t0``."""
    parts = [model, stage]
    if held_out is not None:
        parts.append(held_out)
    if n_bins is not None:
        parts.append(f"nb{int(n_bins)}")
    if trial is not None:
        parts.append(f"t{int(trial)}")
    return _ID_UNSAFE.sub("_", ".".join(str(p) for p in parts))


def resolve_trials(trials: Any, n_trials_default: int | None) -> list[int]:
    """``null`` -> ``range(n_trials_default)``; an int n -> ``range(n)``; a list -> itself."""
    if trials is None:
        if n_trials_default is None:
            raise ValueError(
                "grid.trials is null and folds.lodocv.kfold is not set: cannot tell which "
                "trials to run"
            )
        trials = int(n_trials_default)
    if isinstance(trials, bool):
        raise ValueError(f"grid.trials must be null, an int or a list of ints, got {trials!r}")
    if isinstance(trials, int):
        if trials < 1:
            raise ValueError(f"grid.trials must be >= 1, got {trials}")
        return list(range(trials))
    values = [int(t) for t in trials]
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise ValueError(f"grid.trials must be distinct non-negative ints, got {trials!r}")
    return values


def build_grid(config: Mapping[str, Any], cohorts: Sequence[str], trials: Sequence[int]) -> Grid:
    """Expand the ``grid`` parameters into cells, given the held-out cohorts and trials to run.

    Raises ValueError naming the offending key for unknown stage keys or axes, an ``after``
    stage that does not exist or spans axes this stage lacks, or empty axes.
    """
    config = GridConfig.of(config, "params:grid").settings()  # unknown keys refused there
    name = config["name"]
    cohorts = list(cohorts)
    if not cohorts:
        raise ValueError(
            "grid: no held-out cohorts (grid.cohorts is empty or the data directory has no cohorts)"
        )
    n_bins_values = list(config["n_bins"])
    axis_values: dict[str, list[Any]] = {
        "held_out": cohorts,
        "n_bins": n_bins_values,
        "trial": list(trials),
    }

    prepare = _prepare_cell(config["prepare"])
    cells: list[Cell] = [prepare]
    for model, model_cfg in config["models"].items():
        if not model_cfg["enabled"]:
            continue
        stages = model_cfg["stages"]
        if not stages:
            raise ValueError(f"grid.models.{model}: no stages")
        cells.extend(_model_cells(str(model), stages, axis_values, prepare.cell_id))
    if len(cells) == 1:
        raise ValueError("grid: no enabled model (every grid.models.<model>.enabled is false)")
    return Grid(name, tuple(cells))


def _prepare_cell(cfg: Mapping[str, Any]) -> Cell:
    selection = {k: [str(v) for v in cfg[k]] for k in SELECTION_KEYS if cfg[k]}
    runtime = dict(cfg["runtime_params"])
    link_from = cfg["link_from"]
    return Cell(
        cell_id=PREPARE_ID,
        model=PREPARE_ID,
        stage=PREPARE_ID,
        # With link_from the foundation outputs come from an existing project: nothing to run.
        pipelines=() if link_from else tuple(cfg["pipelines"]),
        selection=selection,
        runtime_params=runtime,
        link_from=str(link_from) if link_from else None,
    )


def _model_cells(
    model: str, stages: Mapping[str, Any], axis_values: Mapping[str, list[Any]], prepare_id: str
) -> list[Cell]:
    cells: list[Cell] = []
    stage_axes: dict[str, list[str]] = {}
    for stage, cfg in stages.items():
        where = f"grid.models.{model}.stages.{stage}"
        axes = [a for a in AXES if a in cfg["axes"]]  # canonical order -> stable ids
        for axis in axes:
            if not axis_values[axis]:
                raise ValueError(
                    f"{where} spans axis {axis!r} but the grid has no {axis} values "
                    f"(grid.{axis if axis != 'held_out' else 'cohorts'})"
                )
        after = cfg["after"]
        if after is not None:
            if after not in stage_axes:
                raise ValueError(
                    f"{where}.after: {after!r} is not an earlier stage of {model} "
                    f"({list(stage_axes)})"
                )
            extra = set(stage_axes[after]) - set(axes)
            if extra:
                raise ValueError(
                    f"{where}: its 'after' stage {after!r} spans axes {sorted(extra)} that "
                    f"{stage!r} lacks"
                )
        stage_axes[stage] = axes
        pipelines = tuple(cfg["pipelines"])  # at least one (grid.parameters.Stage)
        for values in product(*(axis_values[a] for a in axes)):
            point = dict(zip(axes, values, strict=True))
            held_out, n_bins, trial = point.get("held_out"), point.get("n_bins"), point.get("trial")
            context = {
                "model": model,
                "stage": stage,
                **point,
                **({"namespace": namespace_for(held_out)} if held_out is not None else {}),
            }
            cell_id = make_cell_id(model, stage, held_out, n_bins, trial)
            fill = lambda v, what: fill_template(v, context, f"{where}.{what} (cell {cell_id})")  # noqa: E731
            depends = [prepare_id]
            if after is not None:
                dep_point = {a: point[a] for a in stage_axes[after]}
                depends.append(
                    make_cell_id(
                        model,
                        after,
                        dep_point.get("held_out"),
                        dep_point.get("n_bins"),
                        dep_point.get("trial"),
                    )
                )
            cells.append(
                Cell(
                    cell_id=cell_id,
                    model=model,
                    stage=stage,
                    held_out=held_out,
                    n_bins=None if n_bins is None else int(n_bins),
                    trial=None if trial is None else int(trial),
                    pipelines=pipelines,
                    selection={
                        k: [str(v) for v in fill(_as_list(cfg[k]), k)]
                        for k in SELECTION_KEYS
                        if cfg[k]
                    },
                    runtime_params=nest_dotted(fill(dict(cfg["runtime_params"]), "runtime_params")),
                    results={
                        str(k): [str(x) for x in v] if isinstance(v, list) else str(v)
                        for k, v in fill(dict(cfg["results"]), "results").items()
                    },
                    only_missing_outputs=cfg["only_missing_outputs"],
                    depends_on=tuple(depends),
                )
            )
    return cells


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (cell specs, config and data fingerprints)."""
    return _hash(list(parts))


def select_cells(grid: Grid, patterns: Iterable[str] | None) -> Grid:
    """The sub-grid of cells whose id matches any glob pattern, plus everything they depend on."""
    if not patterns:
        return grid
    from fnmatch import fnmatchcase

    patterns = list(patterns)
    wanted = {c.cell_id for c in grid.cells if any(fnmatchcase(c.cell_id, p) for p in patterns)}
    if not wanted:
        raise ValueError(
            f"no cell of grid {grid.name!r} matches {patterns}; ids look like {grid.ids[1:3]}"
        )
    for cell in reversed(grid.cells):  # close over dependencies
        if cell.cell_id in wanted:
            wanted.update(cell.depends_on)
    return Grid(grid.name, tuple(c for c in grid.cells if c.cell_id in wanted))
