"""Print where the results of `make run` are, and how to browse them (kedro-viz, MLflow)."""

from __future__ import annotations

import os

from icb_kedro.paths import project_root


def main() -> None:
    root = project_root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"
    lines = [
        "",
        "icb_kedro results",
        f"  tables  : {root / 'data' / '07_model_output'}  and  {root / 'data' / '03_primary'}",
        f"  results : {root / 'data' / '07_model_output' / 'results_table.parquet'}  (one row per "
        "scored fold)",
        f"  summary : {root / 'data' / '08_reporting' / 'results_summary.md'}",
        f"  report  : {root / 'data' / '08_reporting' / 'interpretation' / 'report.html'}  (+ PNGs "
        "under data/08_reporting)",
        "  AMU     : in the main job (loco); the paper's budget and protocols: .venv/bin/kedro run "
        "--env paper --pipelines amu",
        "  kedro-viz: .venv/bin/kedro viz run        (or: make viz; static: kedro viz "
        "build -> build/)",
        f"  MLflow  : .venv/bin/mlflow ui --backend-store-uri {uri}   (or: make mlflow-ui)",
        "",
    ]
    print("\n".join(lines))  # noqa: T201 - this module exists to print


if __name__ == "__main__":
    main()
