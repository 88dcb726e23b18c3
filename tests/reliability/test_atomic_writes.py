"""Crash safety: a run killed mid-write leaves the earlier output intact (or none), never a
half-written file; the re-run produces identical outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from icb_kedro.datasets import ParquetDataset, partial_path

# A two-node Kedro pipeline whose second output is written slowly: the parent kills it
# (SIGKILL) while the bytes are going to disk.
SCRIPT = textwrap.dedent(
    """
    import sys, time
    import pandas as pd
    from kedro.io import DataCatalog
    from kedro.pipeline import Node, Pipeline
    from kedro.runner import SequentialRunner

    folder, slow = sys.argv[1], sys.argv[2] == "slow"
    if slow:  # write half of the file, tell the parent, then hang until killed
        import io
        original = pd.DataFrame.to_parquet
        def half_then_hang(self, handle, *args, **kwargs):
            buffer = io.BytesIO()
            original(self, buffer, *args, **kwargs)
            handle.write(buffer.getvalue()[:200])
            handle.flush()
            print("WRITING", flush=True)
            time.sleep(60)
        pd.DataFrame.to_parquet = half_then_hang

    catalog = DataCatalog.from_config({
        name: {"type": "icb_kedro.datasets.ParquetDataset", "filepath": f"{folder}/{name}.parquet"}
        for name in ("table", "summary")
    })
    def make_table():
        return pd.DataFrame({"x": range(1000), "y": [i * 0.5 for i in range(1000)]})
    def summarize(table):
        return table.describe().reset_index()
    pipeline = Pipeline([Node(make_table, None, "table"), Node(summarize, "table", "summary")])
    SequentialRunner().run(pipeline, catalog)
    print("DONE", flush=True)
    """
)


def _run(folder: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(folder), mode],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
    )


def test_kill_mid_write_then_resume(tmp_path):
    (tmp_path / "clean").mkdir()
    clean = _run(tmp_path / "clean", "fast")
    assert "DONE" in clean.communicate(timeout=120)[0]

    folder = tmp_path / "run"
    folder.mkdir()
    first = _run(folder, "fast")
    assert "DONE" in first.communicate(timeout=120)[0]
    before = {name: pd.read_parquet(folder / f"{name}.parquet") for name in ("table", "summary")}

    killed = _run(folder, "slow")  # re-run, killed while writing
    for line in killed.stdout:  # Kedro's own log lines come first
        if line.strip() == "WRITING":
            break
    else:
        pytest.fail("the slow run never started writing")
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait(timeout=30)
    # The earlier output is intact and readable; the half-written bytes are in a .partial file.
    for name, table in before.items():
        pd.testing.assert_frame_equal(pd.read_parquet(folder / f"{name}.parquet"), table)
    assert list(
        folder.glob(".table.parquet.partial-*")
    )  # killed while writing the first node's output

    resumed = _run(folder, "fast")
    assert "DONE" in resumed.communicate(timeout=120)[0]
    for name in ("table", "summary"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(folder / f"{name}.parquet"),
            pd.read_parquet(tmp_path / "clean" / f"{name}.parquet"),
        )
    assert not list(folder.glob(".*.partial-*"))  # the crash's leftovers are cleaned up


def test_a_failed_save_leaves_no_partial_file(tmp_path):
    dataset = ParquetDataset(filepath=str(tmp_path / "t.parquet"))
    dataset.save(pd.DataFrame({"a": [1]}))
    with pytest.raises(Exception):
        dataset.save(pd.DataFrame({"a": [object()]}))  # pyarrow cannot write it
    assert dataset.load()["a"].tolist() == [1]
    assert not partial_path(tmp_path / "t.parquet").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet"]


def test_runs_of_killed_kedro_runs_are_marked_killed(tmp_path):
    import socket

    import mlflow

    from icb_kedro.hooks import HOST_TAG, PID_TAG, mark_orphaned_runs_killed

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("icb", artifact_location=str(tmp_path / "artifacts"))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = socket.gethostname()
    runs = {
        "killed": {HOST_TAG: host, PID_TAG: gone.stdout.strip()},  # its process has exited
        "alive": {HOST_TAG: host, PID_TAG: str(os.getpid())},
        "other host": {HOST_TAG: "elsewhere", PID_TAG: gone.stdout.strip()},
    }
    ids = {
        name: client.create_run(experiment, tags=tags).info.run_id for name, tags in runs.items()
    }
    assert mark_orphaned_runs_killed(client, host) == [ids["killed"]]
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {"killed": "KILLED", "alive": "RUNNING", "other host": "RUNNING"}


def test_every_atomic_dataset_writes_its_target_only(tmp_path):
    """Each file type the project writes: the target holds the data (format from the
    target's extension, not the temporary name), and no temporary file remains."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    from icb_kedro import datasets

    frame = pd.DataFrame({"a": [1, 2]})
    cases = {
        "t.parquet": (datasets.ParquetDataset, frame),
        "t.csv": (datasets.CSVDataset, frame),
        "t.pkl": (datasets.PickleDataset, {"x": 1}),
        "t.txt": (datasets.TextDataset, "hello"),
        "t.png": (datasets.ImageDataset, Image.new("RGB", (3, 2))),
        "f.png": (datasets.MatplotlibDataset, plt.figure()),
    }
    for name, (cls, data) in cases.items():
        cls(filepath=str(tmp_path / name)).save(data)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(cases)
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG" and (
        tmp_path / "f.png"
    ).read_bytes()[:4] == b"\x89PNG"
    assert datasets.ImageDataset(filepath=str(tmp_path / "t.png")).load().size == (3, 2)
    assert datasets.ImageDataset.__name__ == "ImageDataset"
