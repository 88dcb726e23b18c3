"""The light grid on the real cohorts: a 2-worker LocalCluster reproduces the sequential run
(same seeds -> same AUROCs), a cell whose worker is killed is re-run, results merge into one
table and MLflow, and a second invocation does no work.

Payload: the baselines pipeline (logistic regression + the published signatures, transfer
protocol), one cell per held-out cohort x trial. IC2Bert cells run through the same engine
(conf/*/parameters_grid.yml, benchmarks/grid_scaling.py) but cost minutes each on 2 CPU
cores, too slow for this suite.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from icb_kedro.grid.dask_runner import run_grid
from icb_kedro.schema import FOLD_METRIC_COLUMNS

pytestmark = pytest.mark.integration

HELD_OUT = ["Melanoma_Nivolumab_Riaz2017", "Melanoma_PD1_Hugo2016"]  # = conftest.HELD_OUT
OFF = {"enabled": False}
# Only what a baselines cell reads is prepared, for two cohorts (the LODOCV pool of each held-out
# cohort is then the other one): enough for the engine, and fast.
FOUNDATION = {
    "runtime_params": {"ingestion": {"cohorts": HELD_OUT}},
    "to_outputs": [
        "lodocv_folds",
        "amu_holdout_folds",
        "expression_standardized",
        "gene_panels",
        "harmonized_expression",
    ],
}
BASELINES = {
    "ic2bert": OFF,
    "baselines": {
        "enabled": True,
        "stages": {
            "fit": {
                "runtime_params": {
                    "baselines.protocols": ["transfer"],
                    **{
                        f"baselines.models.{m}.enabled": False
                        for m in ("svm", "rf", "adaboost", "xgboost", "mlp", "cnn")
                    },
                }
            }
        },
    },
}


@pytest.fixture(scope="module")
def foundation(make_settings):
    """The prepare cell run once (real ingestion -> harmonization -> folds); later grids link it."""
    settings = make_settings("int_foundation", {"prepare": FOUNDATION, "models": BASELINES})
    report = run_grid(
        settings, engine="sequential", select=["prepare"], progress=False, log_mlflow=False
    )
    assert report.ok, report.summary()
    return report.root / "cells" / "prepare"


@pytest.fixture(scope="module")
def sequential(make_settings, foundation):
    settings = make_settings(
        "int_seq", {"prepare": {"link_from": str(foundation)}, "models": BASELINES}
    )
    report = run_grid(settings, engine="sequential", progress=False, log_mlflow=False)
    assert report.ok, report.summary()
    return report


def test_two_workers_reproduce_the_sequential_grid_even_when_a_worker_dies(
    make_settings, foundation, sequential, dask_client, payloads, tmp_path, tracking_uri
):
    settings = make_settings(
        "int_dask", {"prepare": {"link_from": str(foundation)}, "models": BASELINES}
    )
    victim = f"baselines.fit.{HELD_OUT[1]}.t0"
    killer = payloads.make_worker_killer(str(tmp_path), victim, real=True)
    report = run_grid(
        settings, engine="dask", client=dask_client, cell_fn=killer, retries=0, progress=False
    )

    assert report.ok, report.summary()
    # The killed worker may hold the finished prepare cell's result: Dask then recomputes that
    # task, and the cell, already done on disk, reports "skipped" (no repeated work).
    assert sorted(set(report.ran) | ({"prepare"} & set(report.skipped))) == sorted(
        sequential.ran
    ), report.summary()
    pids = payloads.attempts(tmp_path, victim)
    assert (
        len(pids) == 2 and pids[0] != pids[1]
    )  # killed mid-grid, re-run by a fresh worker process

    # Same seeds -> the same table, to the last bit, whichever process ran which cell.
    metrics, expected = report.results["fold_metrics"], sequential.results["fold_metrics"]
    pd.testing.assert_frame_equal(metrics, expected)
    pd.testing.assert_frame_equal(report.results["predictions"], sequential.results["predictions"])
    assert list(metrics.columns[: len(FOLD_METRIC_COLUMNS)]) == list(FOLD_METRIC_COLUMNS)
    assert (
        set(metrics.cohort) == set(HELD_OUT)
        and set(metrics.repeat) == {0}
        and set(metrics.protocol) == {"transfer"}
    )
    assert "logreg" in set(metrics.model) and metrics.auroc.notna().sum() >= len(HELD_OUT)
    assert pd.read_parquet(report.root / "results" / "fold_metrics.parquet").equals(metrics)

    # MLflow: grid run -> one run per cell -> one run per fold row, with the same AUROCs.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(settings.experiment_name)
    runs = client.search_runs(
        [experiment.experiment_id], "tags.icb_grid = 'int_dask'", max_results=1000
    )
    grid_run = next(r for r in runs if r.info.run_id == report.mlflow_run_id)
    cell_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == grid_run.info.run_id]
    assert sorted(r.info.run_name for r in cell_runs) == sorted(
        c for c in report.ran if c != "prepare"
    )
    fold_runs = client.search_runs(
        [experiment.experiment_id],
        " or ".join(f"tags.mlflow.parentRunId = '{r.info.run_id}'" for r in cell_runs[:1]),
        max_results=1000,
    )
    first_cell = cell_runs[0].data.tags["cell_id"]
    rows = metrics[metrics.cell_id == first_cell].set_index("model")
    assert len(fold_runs) == len(rows)
    for run in fold_runs:
        expected_auroc = rows.loc[run.data.tags["model"], "auroc"]
        if pd.notna(expected_auroc):
            assert run.data.metrics["auroc"] == pytest.approx(expected_auroc, abs=0)
    assert grid_run.info.status == "FINISHED"
    n_runs = len(client.search_runs([experiment.experiment_id], max_results=5000))

    # A second invocation does no repeated work: nothing runs, nothing is re-logged.
    markers = {p: p.stat().st_mtime_ns for p in report.root.glob("cells/*/DONE.json")}
    again = run_grid(settings, engine="dask", client=dask_client, progress=False)
    # Every cell is skipped now, including a `prepare` that the first run already reported
    # skipped (the killed worker held its result, see above).
    assert again.ran == [] and sorted(again.skipped) == sorted(
        set(report.ran) | set(report.skipped)
    )
    assert {p: p.stat().st_mtime_ns for p in markers} == markers
    pd.testing.assert_frame_equal(again.results["fold_metrics"], metrics)
    assert len(client.search_runs([experiment.experiment_id], max_results=5000)) == n_runs
    assert again.mlflow_run_id == report.mlflow_run_id
    done = json.loads((report.root / "cells" / victim / "DONE.json").read_text())
    assert done["pid"] == pids[1] and done["rows"]["fold_metrics"] == int(
        (metrics.cell_id == victim).sum()
    )
