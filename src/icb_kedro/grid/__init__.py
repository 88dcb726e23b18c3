"""Scale-out of the LODOCV grid: every (held-out cohort x trial x n_bins x model stage) cell is
an independent Kedro session in its own project folder, run on Dask distributed (LocalCluster
or any scheduler), sequentially, or as SLURM array tasks; results merge into one table and
the project's MLflow experiment.

Entry point: ``python -m icb_kedro.grid run|status|slurm|cell|merge`` (icb_kedro.grid.cli).
"""

from icb_kedro.grid.cells import Cell, Grid, build_grid, make_cell_id, select_cells
from icb_kedro.grid.config import GridSettings, load_settings
from icb_kedro.grid.dask_runner import GridReport, grid_status, plan_grid, run_grid
from icb_kedro.grid.layout import CellError, GridLayout
from icb_kedro.grid.merge import merge_results
from icb_kedro.grid.runner import CellOutcome, run_cell

__all__ = [
    "Cell",
    "CellError",
    "CellOutcome",
    "Grid",
    "GridLayout",
    "GridReport",
    "GridSettings",
    "build_grid",
    "grid_status",
    "load_settings",
    "make_cell_id",
    "merge_results",
    "plan_grid",
    "run_cell",
    "run_grid",
    "select_cells",
]
