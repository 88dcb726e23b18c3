"""The amu pipeline end to end on synthetic inputs (DataCatalog +
SequentialRunner), and its shape."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from icb_kedro.pipelines.amu import create_pipeline
from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS

from .conftest import COHORTS, tiny_params


def test_pipeline_structure_one_namespace_per_cohort() -> None:
    pipeline = create_pipeline(cohorts=COHORTS)
    assert {n.namespace for n in pipeline.nodes} == {
        None,
        "fold_CohortA",
        "fold_CohortB",
        "fold_CohortC",
    }
    assert {
        "predictions_amu",
        "fold_metrics_amu",
        "amu_gene_embeddings",
        "amu_registered_model",
    } <= pipeline.all_outputs()
    assert pipeline.inputs() == {
        "amu_matrix",
        "amu_holdout_folds",
        "harmonized_expression",
        "expression_standardized",
        "gene_panels",
        "params:amu",
        "params:folds.cells",
        *(f"lodocv_folds_fold_{c}" for c in COHORTS),
    }


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read intermediate outputs."""

    def _release(self) -> None:
        pass


@pytest.fixture(scope="module")
def pipeline_run(synthetic_inputs) -> DataCatalog:
    pipeline = create_pipeline(cohorts=COHORTS)
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in synthetic_inputs.items()})
    folds = synthetic_inputs["lodocv_folds"]
    for cohort in COHORTS:
        catalog[f"lodocv_folds_fold_{cohort}"] = MemoryDataset(folds[folds["held_out"] == cohort])
    for name in pipeline.all_outputs():
        catalog[name] = KeptDataset()
    catalog["params:amu"] = tiny_params()
    catalog["params:folds.cells"] = {}  # every (held-out cohort, trial) cell
    SequentialRunner().run(pipeline, catalog)
    return catalog


def test_pipeline_runs_and_scores_every_protocol(pipeline_run, synthetic_inputs) -> None:
    predictions = pipeline_run["predictions_amu"].load()
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert set(predictions["model"]) == {"amu"}
    assert set(predictions["protocol"]) == {
        "amu_holdout",
        "amu_holdout_leaky",
        "transfer",
        "loco",
        "within",
    }
    assert set(predictions["cohort"]) == {"AMU", *COHORTS}
    metrics = pipeline_run["fold_metrics_amu"].load()
    assert list(metrics.columns) == list(FOLD_METRIC_COLUMNS)
    # study: 2 trials x 2 protocols; cohorts: 3 x (transfer 1 + loco 1 + within 1)
    assert len(metrics) == 4 + 9
    overall = pipeline_run["amu_overall_summary"].load()
    assert set(overall["protocol"]) == set(predictions["protocol"])
    report = pipeline_run["amu_summary_md"].load()
    assert "from leakage" in report and "training AUROC" in report
    learning = pipeline_run["amu_learning_check"].load()
    # one row per fitted fold, its training fit beside the held-out AUROC of the same split
    fitted = predictions[["protocol", "cohort", "repeat", "trial"]].drop_duplicates()
    assert len(learning) == len(fitted)
    assert learning["train_auroc"].between(0, 1).all() and (learning["epochs"] >= 1).all()
    scored = learning.dropna(subset=["test_auroc"])
    merged = scored.merge(metrics, on=["protocol", "cohort", "repeat"])
    assert len(merged) and merged["test_auroc"].between(0, 1).all()
    from matplotlib.figure import Figure

    assert isinstance(pipeline_run["amu_roc_pr_plot"].load(), Figure)
    assert isinstance(pipeline_run["amu_confusion_plot"].load(), Figure)


def test_pipeline_final_model_matches_its_embeddings(pipeline_run, synthetic_inputs) -> None:
    final = pipeline_run["amu_final_model"].load()
    embeddings = pipeline_run["amu_gene_embeddings"].load()
    np.testing.assert_array_equal(
        embeddings.drop(columns="gene").to_numpy(), final["state"]["gene_embedding.weight"]
    )
    model = pipeline_run["amu_registered_model"].load()
    scores = model.predict(None, synthetic_inputs["harmonized_expression"])
    assert isinstance(scores, pd.DataFrame) and scores["y_prob"].notna().all()


def test_pipeline_is_deterministic(pipeline_run, synthetic_inputs) -> None:
    from icb_kedro.pipelines.amu import nodes

    again, _ = nodes.run_study_protocols(
        synthetic_inputs["amu_matrix"], synthetic_inputs["amu_holdout_folds"], tiny_params()
    )
    first = pipeline_run["amu_predictions_study"].load()
    pd.testing.assert_frame_equal(again.reset_index(drop=True), first.reset_index(drop=True))
