"""Scale-out of the LODOCV grid: every (held-out cohort x trial x n_bins x model stage) cell is
an independent Kedro session in its own project folder, run on Dask distributed (LocalCluster
or any scheduler), sequentially, or as SLURM array tasks; results merge into one table and
the project's MLflow experiment.

Entry point: ``python -m icb_kedro.grid run|status|slurm|cell|merge`` (icb_kedro.grid.cli).
"""

from importlib import import_module
from typing import Any

# Imported on first use (PEP 562): a cell's child process (``python -m
# icb_kedro.grid.cell_session``) imports this package and should not pay for Dask.
_EXPORTS = {
    "Cell": "cells",
    "Grid": "cells",
    "build_grid": "cells",
    "make_cell_id": "cells",
    "select_cells": "cells",
    "GridSettings": "config",
    "load_settings": "config",
    "GridReport": "dask_runner",
    "grid_status": "dask_runner",
    "plan_grid": "dask_runner",
    "run_grid": "dask_runner",
    "CellError": "layout",
    "GridLayout": "layout",
    "merge_results": "merge",
    "CellOutcome": "runner",
    "run_cell": "runner",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)


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
