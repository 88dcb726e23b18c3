"""Cell functions used as fault-injecting or Kedro-free payloads in the engine tests.

They run inside Dask worker processes, which import this module by name: the ``payloads``
fixture puts this folder on the workers' PYTHONPATH.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

from icb_kedro.grid.runner import run_cell


def count_attempt(marker_dir: str, cell_id: str) -> int:
    """Append one line per attempt; return how many attempts this is (1-based)."""
    path = Path(marker_dir) / f"{cell_id}.attempts"
    with path.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


def attempts(marker_dir: str | Path, cell_id: str) -> list[int]:
    path = Path(marker_dir) / f"{cell_id}.attempts"
    return [int(x) for x in path.read_text().split()] if path.is_file() else []


def link_only(cell, layout, fingerprints):
    """The real run_cell (links, markers) without a Kedro session."""
    return run_cell(dataclasses.replace(cell, pipelines=()), layout, fingerprints)


def make_flaky(marker_dir: str, failing: tuple[str, ...], real: bool = False):
    """A cell function that raises for ``failing`` cells and runs the others (link-only or real)."""

    def flaky(cell, layout, fingerprints):
        count_attempt(marker_dir, cell.cell_id)
        if cell.cell_id in failing:
            raise RuntimeError(f"injected failure in {cell.cell_id}")
        return (run_cell if real else link_only)(cell, layout, fingerprints)

    return flaky


def make_worker_killer(marker_dir: str, victim: str, real: bool = True):
    """Kill the whole worker process the first time ``victim`` runs (SIGKILL: no cleanup)."""

    def killer(cell, layout, fingerprints):
        if count_attempt(marker_dir, cell.cell_id) == 1 and cell.cell_id == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return (run_cell if real else link_only)(cell, layout, fingerprints)

    return killer
