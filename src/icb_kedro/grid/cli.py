"""``python -m icb_kedro.grid``: run / status / slurm / cell / merge.

python -m icb_kedro.grid run --env base                 # Dask LocalCluster (grid.engine.n_workers)
python -m icb_kedro.grid run --scheduler tcp://host:8786 # an existing Dask cluster
python -m icb_kedro.grid run --engine sequential         # one cell after the other, here
python -m icb_kedro.grid status --env base
python -m icb_kedro.grid slurm --env base && <grid root>/slurm/submit.sh
python -m icb_kedro.grid run --set n_bins=[2,4,8] --set trials=3 --cells 'ic2bert.*.Melanoma*'
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from icb_kedro.grid.config import load_settings


def parse_overrides(items: tuple[str, ...]) -> dict[str, Any]:
    """``("engine.n_workers=4", "n_bins=[4,8]")`` -> nested dict (values parsed as YAML)."""
    from icb_kedro.grid.templating import nest_dotted

    flat: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        flat[key.strip()] = yaml.safe_load(value)
    return nest_dotted(flat)


def _settings(
    env: str, overrides: tuple[str, ...], project: str | None, extra: dict[str, Any] | None = None
):
    from icb_kedro.grid.config import deep_merge

    return load_settings(
        project, env=env, overrides=deep_merge(parse_overrides(overrides), extra or {})
    )


_env = click.option(
    "--env", "-e", default="base", show_default=True, help="Kedro config environment of the cells."
)
_set = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a grid parameter (dotted, YAML value).",
)
_project = click.option(
    "--project",
    type=click.Path(file_okay=False),
    default=None,
    help="Project root (default: found from the cwd).",
)
_cells = click.option(
    "--cells",
    "select",
    multiple=True,
    metavar="GLOB",
    help="Only cells whose id matches (plus their dependencies).",
)


@click.group()
def main() -> None:
    """Run the LODOCV grid (held-out cohort x trial x n_bins x model) as independent Kedro cells."""


@main.command()
@_env
@_set
@_project
@_cells
@click.option(
    "--engine", type=click.Choice(["dask", "sequential"]), default="dask", show_default=True
)
@click.option(
    "--scheduler",
    default=None,
    help="Dask scheduler address (else $ICB_DASK_SCHEDULER, else a LocalCluster).",
)
@click.option(
    "--workers",
    type=int,
    default=None,
    help="LocalCluster worker processes (grid.engine.n_workers).",
)
@click.option(
    "--retries",
    type=int,
    default=None,
    help="Extra attempts for a failing cell (grid.engine.retries).",
)
@click.option("--no-mlflow", is_flag=True, help="Do not log the merged results to MLflow.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(
    env, overrides, project, select, engine, scheduler, workers, retries, no_mlflow, no_progress
) -> None:
    """Run every unfinished cell, merge results, log to MLflow. Exit 1 if a cell failed."""
    from icb_kedro.grid.config import SCHEDULER_ENV
    from icb_kedro.grid.dask_runner import run_grid

    extra: dict[str, Any] = {"engine": {}}
    if scheduler:
        os.environ[SCHEDULER_ENV] = (
            scheduler  # the flag wins over $ICB_DASK_SCHEDULER and the config
        )
    if workers is not None:
        extra["engine"]["n_workers"] = workers
    settings = _settings(env, overrides, project, extra)
    report = run_grid(
        settings,
        engine=engine,
        retries=retries,
        select=select or None,
        progress=not no_progress,
        log_mlflow=False if no_mlflow else None,
    )
    click.echo(report.summary())
    for cell_id, error in report.failed.items():
        click.echo(f"\n--- {cell_id} ---\n{error}", err=True)
    sys.exit(0 if report.ok else 1)


@main.command()
@_env
@_set
@_project
@_cells
def status(env, overrides, project, select) -> None:
    """Cells by state (done / stale / failed / pending), per model stage."""
    from icb_kedro.grid.dask_runner import grid_status, plan_grid

    settings = _settings(env, overrides, project)
    grid, layout, fps = plan_grid(settings, select or None)
    table = grid_status(grid, layout, fps)
    counts = table.groupby(["model", "stage", "state"]).size().unstack(fill_value=0)
    click.echo(f"grid {grid.name} at {layout.root} ({len(table)} cells)")
    click.echo(counts.to_string())
    done = table[table.state == "done"]
    if len(done):
        click.echo("\nmean wall time per cell (s):")
        click.echo(done.groupby(["model", "stage"])["wall_s"].mean().round(1).to_string())
    for cid in table.loc[table.state == "failed", "cell_id"]:
        click.echo(f"failed: {cid} (see {layout.cell_dir(cid) / 'ERROR.txt'})")


@main.command()
@_env
@_set
@_project
@_cells
def slurm(env, overrides, project, select) -> None:
    """Write SLURM array scripts (one task per unfinished cell) and submit.sh."""
    from icb_kedro.grid.dask_runner import plan_grid
    from icb_kedro.grid.slurm import write_slurm_scripts

    settings = _settings(env, overrides, project)
    grid, layout, fps = plan_grid(settings, select or None)
    written = write_slurm_scripts(
        grid, layout, fps, settings.project_root, settings.grid["slurm"], env
    )
    for name, path in written.items():
        click.echo(f"{name}: {path}")
    click.echo(f"submit with: {written['submit.sh']}")


@main.command()
@click.option(
    "--root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Grid root (holds grid.json).",
)
@click.option(
    "--cells",
    "cells_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="File of cell ids.",
)
@click.option(
    "--index", type=int, default=None, help="Line of --cells to run (SLURM_ARRAY_TASK_ID)."
)
@click.option("--cell-id", default=None, help="Run this cell instead.")
@click.option("--dry-run", is_flag=True, help="Print the cell id and exit.")
def cell(root, cells_file, index, cell_id, dry_run) -> None:
    """Run one cell of a planned grid (the SLURM array task)."""
    from icb_kedro.grid.dask_runner import execute_cell
    from icb_kedro.grid.manifest import read_manifest
    from icb_kedro.grid.runner import run_cell

    grid, layout, fps, _ = read_manifest(root)
    if cell_id is None:
        if cells_file is None or index is None:
            raise click.UsageError("give --cell-id, or --cells and --index")
        ids = [line.strip() for line in Path(cells_file).read_text().splitlines() if line.strip()]
        if not 0 <= index < len(ids):
            raise click.BadParameter(
                f"index {index} outside 0..{len(ids) - 1} of {cells_file}", param_hint="--index"
            )
        cell_id = ids[index]
    target = grid[cell_id]
    if dry_run:
        click.echo(cell_id)
        return
    outcome = execute_cell(
        run_cell, target, layout, {k: fps[k] for k in (cell_id, *target.depends_on)}
    )
    click.echo(f"{outcome.cell_id}: {outcome.status} in {outcome.wall_s:.1f} s {outcome.rows}")


@main.command()
@click.option(
    "--root",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Grid root (holds grid.json).",
)
@_env
@_project
@click.option("--no-mlflow", is_flag=True)
def merge(root, env, project, no_mlflow) -> None:
    """Merge finished cells of a planned grid into results/ and MLflow (the SLURM merge job)."""
    from icb_kedro.grid.dask_runner import GridReport, grid_status
    from icb_kedro.grid.manifest import read_manifest
    from icb_kedro.grid.merge import merge_results
    from icb_kedro.grid.tracking import log_grid

    grid, layout, fps, _ = read_manifest(root)
    table = grid_status(grid, layout, fps)
    report = GridReport(grid.name, Path(layout.root), "slurm")
    report.skipped = table.loc[table.state == "done", "cell_id"].tolist()
    report.failed = {
        cid: "failed (see ERROR.txt)" for cid in table.loc[table.state == "failed", "cell_id"]
    }
    report.blocked = {
        cid: "not finished" for cid in table.loc[table.state.isin(["pending", "stale"]), "cell_id"]
    }
    report.results = merge_results(grid, layout, fps)
    if not no_mlflow and any(len(t) for t in report.results.values()):
        settings = load_settings(project, env=env)
        report.mlflow_run_id = log_grid(
            grid, layout, fps, report, settings.tracking_uri, settings.experiment_name
        )
    click.echo(report.summary())
    sys.exit(0 if report.ok else 1)
