"""The baselines pipeline end to end on synthetic inputs (DataCatalog + SequentialRunner),
and on the real shared cohorts in the light config (integration)."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from matplotlib.figure import Figure

from icb_kedro.models.baselines.estimators import MODEL_FAMILIES
from icb_kedro.pipelines.baselines import create_pipeline
from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read intermediate outputs."""

    def _release(self) -> None:
        pass


def test_pipeline_reads_the_foundation_datasets_and_writes_the_shared_results():
    pipeline = create_pipeline()
    assert pipeline.inputs() == {
        "expression_standardized",
        "harmonized_expression",
        "gene_panels",
        "lodocv_folds",
        "amu_matrix",
        "amu_holdout_folds",
        "baselines_signature_files",
        "params:baselines",
        "params:baselines.panel",
        "params:baselines.signatures",
        "params:baselines.evaluation",
        "params:folds.cells",
    }
    expected = {
        "predictions_baselines",
        "fold_metrics_baselines",
        "signature_coverage",
        "baselines_amu_signature_coverage",
        "baselines_summary_md",
    }
    assert expected <= pipeline.all_outputs()
    assert {f"baselines_fit_{m}" for m in MODEL_FAMILIES} <= {n.name for n in pipeline.nodes}
    # Signatures on the AMU matrix (amu_holdout) flow into the combined predictions.
    combine = next(n for n in pipeline.nodes if n.name == "baselines_combine_predictions")
    assert {"baselines_predictions_signatures", "baselines_predictions_amu_signatures"} <= set(
        combine.inputs
    )


@pytest.fixture(scope="module")
def pipeline_run(synthetic_inputs) -> DataCatalog:
    from .conftest import TINY_PARAMS  # noqa: PLC0415

    pipeline = create_pipeline()
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in synthetic_inputs.items()})
    for name in pipeline.all_outputs():
        catalog[name] = KeptDataset()
    catalog["params:baselines"] = TINY_PARAMS
    catalog["params:folds.cells"] = {}  # every (held-out cohort, trial) cell
    for key in ("panel", "signatures", "evaluation"):
        catalog[f"params:baselines.{key}"] = TINY_PARAMS[key]
    SequentialRunner().run(pipeline, catalog)
    return catalog


def test_pipeline_runs_every_model_signature_and_protocol(pipeline_run):
    predictions = pipeline_run["predictions_baselines"].load()
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert set(predictions["model"]) == {
        "logreg",
        "svm",
        "rf",
        "xgboost",
        "sig_UP",
        "sig_DOWN",
        "sig_WM",
        "sig_COX_IS",
    }
    assert set(predictions["protocol"]) == {"transfer", "loco", "within", "amu_holdout"}
    signatures = predictions[predictions["model"].str.startswith("sig_")]
    assert "amu_holdout" not in set(signatures["protocol"])  # the AMU matrix has no signature genes
    amu_coverage = pipeline_run["baselines_amu_signature_coverage"].load()
    assert (
        set(amu_coverage["signature"]) == {"UP", "DOWN", "WM", "COX_IS", "SPARSE"}
        and (amu_coverage["status"] == "failed").all()
    )
    assert pipeline_run["baselines_predictions_amu_signatures"].load().empty  # empty, without error

    metrics = pipeline_run["fold_metrics_baselines"].load()
    assert list(metrics.columns) == list(FOLD_METRIC_COLUMNS)
    # 3 cohorts x (transfer 1 + loco 1 + within 1) for 7 LODOCV models; AMU: 2 trials x 4 models
    assert len(metrics) == 9 * 7 + 2 * 4

    overall = pipeline_run["baselines_overall_summary"].load()
    assert set(zip(overall["model"], overall["protocol"])) == set(
        zip(predictions["model"], predictions["protocol"])
    )
    assert overall[["ci_low", "ci_high"]].notna().all().all()
    comparisons = pipeline_run["baselines_comparisons"].load()
    assert {"ALL"} <= set(comparisons["cohort"])
    coverage = pipeline_run["signature_coverage"].load()
    assert coverage.set_index("signature").loc["SPARSE", "status"] == "failed"
    log = pipeline_run["baselines_search_log"].load()
    assert set(log["model"]) == {"logreg", "svm", "rf", "xgboost"}
    summary = pipeline_run["baselines_summary_md"].load()
    assert (
        "SPARSE" in summary
        and "Signatures on the AMU matrix" in summary
        and "0 of 5 scored (none)" in summary
    )
    for protocol in ("transfer", "loco", "within", "amu_holdout"):
        assert isinstance(pipeline_run[f"baselines_cohort_auroc_{protocol}_plot"].load(), Figure)
        assert isinstance(pipeline_run[f"baselines_roc_pr_{protocol}_plot"].load(), Figure)
    assert isinstance(pipeline_run["baselines_overall_auroc_plot"].load(), Figure)


@pytest.fixture(scope="module")
def baselines_light_run(foundation_project):
    foundation_project.run(["baselines"])
    return foundation_project


@pytest.mark.integration
def test_baselines_on_the_real_cohorts_in_the_light_config(baselines_light_run):
    """Light config on the real data: 1 trial, tiny grids, every family + every signature."""
    foundation_project = baselines_light_run
    predictions = foundation_project.read("data/07_model_output/predictions_baselines.parquet")
    models = set(predictions["model"])
    assert {"logreg", "svm", "rf", "adaboost", "xgboost", "mlp", "cnn"} <= models
    signatures = {m for m in models if m.startswith("sig_")}
    # 14 on the cohort panel + Blood_Response, the only one passing coverage on the AMU matrix
    # (14/15 genes).
    assert {
        "sig_CD8_Jiang",
        "sig_COX_IS",
        "sig_IPRES",
        "sig_IMPRES",
        "sig_TIS",
    } <= signatures and len(signatures) == 15
    assert set(predictions["protocol"]) == {"transfer", "loco", "within", "amu_holdout"}
    assert set(predictions.loc[predictions["model"] == "cnn", "protocol"]) == {"amu_holdout"}
    amu = predictions[predictions["protocol"] == "amu_holdout"]
    assert {m for m in set(amu["model"]) if m.startswith("sig_")} == {"sig_Blood_Response"}
    assert set(predictions.loc[predictions["model"] == "sig_Blood_Response", "protocol"]) == {
        "amu_holdout"
    }
    amu_rows = amu.groupby("model").apply(lambda t: frozenset(zip(t.trial, t.sample_key)))
    assert amu_rows.nunique() == 1  # the signature scored the models' amu_holdout test rows

    # Every model and signature scored the same test rows of every LODOCV fold.
    lodocv = predictions[predictions["protocol"] != "amu_holdout"]
    rows_per_model = lodocv.groupby("model").apply(
        lambda t: frozenset(zip(t.protocol, t.cohort, t.trial, t.sample_key))
    )
    assert rows_per_model.drop("cnn", errors="ignore").nunique() == 1

    coverage = pd.read_csv(
        foundation_project.path / "data/08_reporting/baselines/signature_coverage.csv"
    ).set_index("signature")
    assert (coverage["status"] == "scored").sum() == 13 and coverage.loc[
        "IMPRES", "status"
    ] == "scored_below_coverage"
    assert (
        coverage.loc["IPS", "status"] == "failed"
        and "10,000 genes" in coverage.loc["IPS", "reason"]
    )
    assert coverage.loc["TLS", "status"] == "failed"  # 7/9 = 78%
    amu_coverage = pd.read_csv(
        foundation_project.path / "data/08_reporting/baselines/amu_signature_coverage.csv"
    ).set_index("signature")
    assert amu_coverage.index[amu_coverage["status"] == "scored"].tolist() == ["Blood_Response"]

    metrics = foundation_project.read("data/07_model_output/fold_metrics_baselines.parquet")
    assert metrics["n_test"].gt(0).all() and metrics["auroc"].between(0, 1).all()
    for name in ("overall_auroc.png", "cohort_auroc_transfer.png", "roc_pr_loco.png", "summary.md"):
        assert (
            foundation_project.path / "data/08_reporting/baselines" / name
        ).stat().st_size > 1000

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=foundation_project.tracking_uri)
    experiment = client.get_experiment_by_name("icb_kedro")
    children = client.search_runs(
        [experiment.experiment_id], filter_string="tags.dataset = 'fold_metrics_baselines'"
    )
    assert len(children) == len(metrics)

    # The best family by mean loco AUROC, refitted on every labelled patient, registered as
    # icb_baseline@champion with its evidence; it loads where the project is not installed.
    cohort_table = foundation_project.read("data/07_model_output/baselines_cohort_summary.parquet")
    loco = cohort_table[
        (cohort_table["protocol"] == "loco")
        & cohort_table["model"].isin(["logreg", "svm", "rf", "adaboost", "xgboost", "mlp"])
    ]
    best = loco.groupby("model")["auroc_mean"].mean().idxmax()
    registry = mlflow.MlflowClient(
        tracking_uri=foundation_project.tracking_uri, registry_uri=foundation_project.tracking_uri
    )
    champion = registry.get_model_version_by_alias("icb_baseline", "champion")
    assert champion.tags["family"] == best and champion.tags["protocol"] == "final"
    assert int(champion.tags["n_train"]) > 500 and champion.tags["selection_auroc"].startswith(
        "mean loco AUROC 0."
    )
    assert champion.description.startswith(f"{best} baseline, chosen as the best classical model")


LOAD_AND_SCORE = """
import importlib.util, sys
assert importlib.util.find_spec("icb_kedro") is None and importlib.util.find_spec("kedro") is None
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])
"""


@pytest.mark.integration
def test_the_registered_baseline_scores_a_cohort_where_the_project_is_not_installed(
    baselines_light_run, model_free_env, shared_data_dir, tmp_path
):
    """icb_baseline@champion (registered by the light run) scores the real Hugo 2016 cohort in
    a virtual environment without icb_kedro or Kedro exactly as in the project."""
    foundation_project = baselines_light_run
    import mlflow
    import numpy as np

    from icb_kedro.pipelines.predict.nodes import read_expression_file

    expression = read_expression_file(
        {"input_path": str(shared_data_dir / "cohorts/Melanoma_PD1_Hugo2016.expression.tsv.gz")}
    )
    expression.to_parquet(tmp_path / "cohort.parquet")
    mlflow.set_tracking_uri(foundation_project.tracking_uri)
    mlflow.set_registry_uri(foundation_project.tracking_uri)
    expected = (
        mlflow.pyfunc.load_model("models:/icb_baseline@champion")
        .predict(expression)["y_prob"]
        .to_numpy()
    )
    assert expected.std() > 1e-3  # not a constant predictor
    model_free_env.run(
        LOAD_AND_SCORE,
        "models:/icb_baseline@champion",
        str(tmp_path / "cohort.parquet"),
        str(tmp_path / "scores.parquet"),
        tracking_uri=foundation_project.tracking_uri,
        cwd=foundation_project.path,
    )
    np.testing.assert_allclose(
        pd.read_parquet(tmp_path / "scores.parquet")["y_prob"].to_numpy(),
        expected,
        rtol=0,
        atol=1e-12,
    )
