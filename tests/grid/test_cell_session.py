"""A cell's session process: it dies with its worker, and it starts without Dask."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): read its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl death signal: Linux")
def test_a_session_process_does_not_outlive_its_worker() -> None:
    """A Dask nanny kills its worker, not the worker's children: the session must go too, or
    it would share the cell's folder with the cell's retry."""
    worker = (
        "import subprocess, sys, os\n"
        "from icb_kedro.grid.cell_session import _die_with_parent\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
        " preexec_fn=_die_with_parent)\n"
        "print(child.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    out = subprocess.run([sys.executable, "-c", worker], capture_output=True, text=True, check=True)
    child = int(out.stdout.split()[0])
    deadline = time.time() + 10
    while _alive(child) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_the_session_entry_point_imports_neither_dask_nor_itself_twice() -> None:
    probe = (
        "import sys, runpy, warnings\n"
        "warnings.simplefilter('error', RuntimeWarning)\n"
        "import icb_kedro.grid.cell_session\n"
        "assert 'distributed' not in sys.modules and 'icb_kedro.grid.runner' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)
