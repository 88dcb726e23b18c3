"""One grid cell's Kedro session, run in a child process started in the cell's folder.

``python -m icb_kedro.grid.cell_session <cell_dir>`` (started by :func:`run_in_child`).

A Kedro session changes process-wide state: it needs the cell's folder as working
directory (MLflow's default artifact root and Kedro's ``info.log`` are cwd-relative) and the
cell's environment (``ICB_DATA_DIR``, the cell's ``MLFLOW_TRACKING_URI``); Kedro's bootstrap
prepends the cell's ``src`` to ``PYTHONPATH`` and ``sys.path``; kedro-mlflow exports
``MLFLOW_EXPERIMENT_ID`` and leaves its run active; MLflow caches one SQLAlchemy engine per
database for the life of the process. In a child process all of that ends with the
process: the worker, which runs hundreds of cells, never changes its own directory,
environment or ``sys.path`` and needs no private MLflow API to let go of a cell's
database, however the session ended.

The request (cell, layout, linked dependency files) goes in as a pickle in the cell's
folder; the result tables, or the error (type, message, traceback), come back the same
way. The child also checks that the session left its dependencies' files untouched, since
that needs the cell's configuration and environment. A cell picks its folds by runtime
parameter (``folds.cells``), as any ``kedro run`` can; no input file is rewritten.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: MLflow variables of the worker's environment a cell never inherits.
INHERITED_MLFLOW = (
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_RUN_ID",
    "MLFLOW_EXPERIMENT_ID",
    "MLFLOW_EXPERIMENT_NAME",
)
REQUEST = ".session_request.pkl"
RESULT = ".session_result.pkl"
ERROR = ".session_error.json"


def run_in_child(
    cell: Any, layout: Any, cell_dir: Path, linked: Mapping[str, Path], environ: Mapping[str, str]
) -> dict[str, Any]:
    """Slice the cell's inputs, run its session and return its result tables by kind, all in
    a child process; a failure there is raised here as ``CellError`` naming the cell."""
    from icb_kedro.grid.layout import CellError

    cell_dir = Path(cell_dir)
    for stale in (RESULT, ERROR):
        (cell_dir / stale).unlink(missing_ok=True)
    request = {"cell": cell, "layout": layout, "linked": dict(linked)}
    (cell_dir / REQUEST).write_bytes(pickle.dumps(request))
    # The cell keeps its own tracking store: no registry, run or experiment of the worker's
    # own environment may leak in (the cell's settings in ``environ`` win).
    env = {k: v for k, v in os.environ.items() if k not in INHERITED_MLFLOW or k in environ}
    env.update(environ)
    completed = subprocess.run(
        [sys.executable, "-m", __name__, str(cell_dir)],
        cwd=cell_dir,
        env=env,
        check=False,
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
    )
    try:
        if (cell_dir / ERROR).exists():
            error = json.loads((cell_dir / ERROR).read_text())
            message = error["message"]
            if error["type"] != CellError.__name__:
                message = f"cell {cell.cell_id!r}: {error['type']}: {message}"
            raise CellError(f"{message}\n(in the cell's session process)\n{error['traceback']}")
        if completed.returncode != 0 or not (cell_dir / RESULT).exists():
            raise CellError(
                f"cell {cell.cell_id!r}: its session process ended with status "
                f"{completed.returncode} and no result (killed? see {cell_dir / 'info.log'})"
            )
        return pickle.loads((cell_dir / RESULT).read_bytes())
    finally:
        for name in (REQUEST, RESULT, ERROR):
            (cell_dir / name).unlink(missing_ok=True)


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGKILL it when its parent dies. A Dask nanny kills
    its worker, not the worker's children; without this a cell's session would outlive its
    worker and share its folder with the cell's retry, which takes the claim over."""
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _exit_when_orphaned(parent: int) -> None:
    """Elsewhere (no prctl): a daemon thread that ends the process once its parent is gone."""
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(2.0)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()


def _session(cell_dir: Path) -> dict[str, Any]:
    from icb_kedro.grid.session import (
        _check_targets_untouched,
        _run_session,
        _stat_targets,
    )

    request = pickle.loads((cell_dir / REQUEST).read_bytes())
    cell, layout, linked = request["cell"], request["layout"], request["linked"]
    before = _stat_targets(linked.values())
    results = _run_session(cell, layout, cell_dir) if cell.pipelines else {}
    _check_targets_untouched(cell, before)
    return results


def main(argv: list[str] | None = None) -> int:
    cell_dir = Path((argv if argv is not None else sys.argv[1:])[0]).resolve()
    if not sys.platform.startswith("linux"):
        _exit_when_orphaned(os.getppid())
    try:
        results = _session(cell_dir)
    except BaseException as error:  # reported to the parent, which raises it as CellError
        report = {
            "type": type(error).__name__,
            "message": str(error),
            "traceback": traceback.format_exc(),
        }
        (cell_dir / ERROR).write_text(json.dumps(report))
        return 1
    partial = cell_dir / f"{RESULT}.partial"
    partial.write_bytes(pickle.dumps(results))
    os.replace(partial, cell_dir / RESULT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
