"""Wall time and peak memory of ingestion + harmonization on every cohort of the data folder.

    .venv/bin/python benchmarks/ingest_harmonize.py     # conf/base, $ICB_DATA_DIR or ../shared/data

Runs ``kedro run --pipelines ingestion,harmonization`` in a throw-away copy of the project
(its own data/ and mlflow.db) as a child process, so the peak resident memory printed is that
run's alone (getrusage of the children). Target (13 cohorts, 627 samples, 12 full
transcriptomes): <= 60 s and <= 3 GiB on 2 cores. Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    data_dir = Path(
        os.environ.get("ICB_DATA_DIR") or PROJECT_ROOT / ".." / "shared" / "data"
    ).resolve()
    with tempfile.TemporaryDirectory(prefix="icb_bench_") as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
        shutil.copytree(
            PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local")
        )
        (project / "conf" / "local").mkdir(exist_ok=True)
        (project / "src").mkdir()
        env = {
            **os.environ,
            "ICB_DATA_DIR": str(data_dir),
            "KEDRO_DISABLE_TELEMETRY": "true",
            "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        }
        kedro = Path(sys.executable).with_name("kedro")
        started = time.perf_counter()
        result = subprocess.run(
            [str(kedro), "run", "--pipelines", "ingestion,harmonization"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(result.stdout[-3000:] + result.stderr[-3000:])
        peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        import pandas as pd

        table = pd.read_parquet(project / "data/03_primary/harmonized_expression.parquet")
        panels = pd.read_parquet(project / "data/03_primary/gene_panels.parquet")
        sizes = panels.panel.value_counts().to_dict()
        print(
            f"cohorts {table['cohort'].nunique()}, samples {len(table)}, harmonized genes "
            f"{table.shape[1] - 4}, panels {sizes}"
        )
        print(
            f"ingestion + harmonization: {wall:.1f} s wall (kedro start-up included), peak RSS "
            f"{peak_gib:.2f} GiB, {os.cpu_count()} cores"
        )
        print("target: <= 60 s, <= 3 GiB")


if __name__ == "__main__":
    main()
