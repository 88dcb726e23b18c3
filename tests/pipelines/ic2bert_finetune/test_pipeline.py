"""ic2bert_finetune pipeline: structure, and a SequentialRunner run on the synthetic cohorts."""

from __future__ import annotations

from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.pipelines.ic2bert_finetune.pipeline import create_pipeline, finetune_nodes
from icb_kedro.schema import FOLD_METRIC_COLUMNS

COHORTS = ["CohortA", "CohortB", "CohortC"]


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner does not release, so the test can read every output."""

    def _release(self) -> None:
        pass


def _keep_outputs(catalog: DataCatalog, pipeline) -> DataCatalog:
    for name in pipeline.all_outputs():
        catalog[name] = KeptDataset()
    return catalog


def test_registered_pipeline_includes_upstream_and_valid_namespaces(registered_pipeline) -> None:
    pipeline = registered_pipeline("ic2bert_finetune")
    alone = create_pipeline()  # the fine-tuning nodes only: no other pipeline's node
    assert not {n.name for n in alone.nodes} & {"build_harmonized_expression"}
    names = {n.name for n in pipeline.nodes}
    assert {
        "build_harmonized_expression",
        "combine_lodocv_folds",
        "ic2bert_select_model_input",
    } <= names
    for cohort in discover_cohorts():
        ns = namespace_for(cohort)
        assert {
            f"{ns}.ic2bert_pretrain",
            f"{ns}.ic2bert_finetune_transfer",
            f"{ns}.ic2bert_register_best_model",
        } <= names
    assert {
        "predictions_ic2bert",
        "fold_metrics_ic2bert",
        "ic2bert_registered_models",
    } <= pipeline.all_outputs()
    assert not any("." in name for name in ("predictions_ic2bert", "fold_metrics_ic2bert"))


def test_finetune_nodes_run_on_synthetic_cohorts(world, finetune_params) -> None:
    datasets = {
        "params:ic2bert_finetune": finetune_params,
        "params:tokenization.input": world["tokenization"]["input"],
        "params:folds.cells": {},  # every (held-out cohort, trial) cell
    }
    for cohort, item in world["cohorts"].items():
        ns = namespace_for(cohort)
        datasets[f"lodocv_folds_{ns}"] = item["folds"]
        datasets[f"{ns}.ic2bert_tokens"] = item["tokens"]
        datasets[f"{ns}.ic2bert_pretrained"] = item["pretrained"]
    catalog = DataCatalog({name: MemoryDataset(value) for name, value in datasets.items()})
    pipeline = finetune_nodes(cohorts=COHORTS)
    SequentialRunner().run(pipeline, _keep_outputs(catalog, pipeline))

    predictions = catalog.load("predictions_ic2bert")
    arms = set(map(tuple, predictions[["model", "protocol"]].drop_duplicates().to_numpy()))
    assert arms == {
        ("ic2bert", "transfer"),
        ("ic2bert", "within"),
        ("ic2bert", "loco"),
        ("ic2bert_ensemble", "loco"),
    }
    assert sorted(predictions["cohort"].unique()) == COHORTS
    metrics = catalog.load("fold_metrics_ic2bert")
    assert list(metrics.columns) == list(FOLD_METRIC_COLUMNS)
    # One row per repeat: transfer and within 1 repeat (3 pooled splits) x 3 cohorts; loco 1 x 3
    # for each of 2 models.
    assert metrics.groupby(["model", "protocol"]).size().to_dict() == {
        ("ic2bert", "loco"): 3,
        ("ic2bert", "transfer"): 3,
        ("ic2bert", "within"): 3,
        ("ic2bert_ensemble", "loco"): 3,
    }
    transfer = predictions[predictions["protocol"] == "transfer"]
    assert (
        transfer.groupby("cohort")["trial"].nunique().eq(3).all()
        and not transfer.duplicated(["cohort", "sample_key"]).any()
    )
    registry = catalog.load("ic2bert_registered_models")
    assert sorted(registry["model_name"]) == [f"icb_ic2bert_{namespace_for(c)}" for c in COHORTS]
    assert catalog.load("ic2bert_sample_size")["cohort"].unique().tolist() == ["CohortA"]
    assert len(catalog.load("ic2bert_cohort_summary")) == 12
    for plot in ("ic2bert_auroc_plot", "ic2bert_sample_size_plot"):
        assert catalog.load(plot).axes
