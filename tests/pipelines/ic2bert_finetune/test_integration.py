"""The light config end to end on the real cohorts: tokenization -> pretraining -> fine-tuning
-> registry -> predict, in an isolated project copy (its own data/ and mlflow.db)."""

from __future__ import annotations

import pandas as pd
import pytest

from icb_kedro.paths import discover_cohorts, namespace_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ic2bert_project(foundation_project):
    """The foundation (already run by the shared fixture) + every IC2Bert node, light env."""
    cohorts = discover_cohorts()
    start = ["ic2bert_select_model_input", *(f"{namespace_for(c)}.ic2bert_split_pretraining_pool" for c in cohorts)]
    foundation_project.run(["ic2bert_finetune"], from_nodes=start)
    foundation_project.run(["predict"])
    return foundation_project


def test_light_run_scores_every_cohort_with_every_protocol(ic2bert_project) -> None:
    predictions = ic2bert_project.read("data/07_model_output/predictions_ic2bert.parquet")
    cohorts = discover_cohorts()
    assert sorted(predictions["cohort"].unique()) == cohorts
    arms = predictions.groupby(["model", "protocol"])["cohort"].nunique().to_dict()
    assert arms == {(m, p): len(cohorts) for m, p in [("ic2bert", "transfer"), ("ic2bert", "within"), ("ic2bert", "loco"), ("ic2bert_ensemble", "loco")]}
    assert predictions["y_prob"].between(0, 1).all()
    metrics = ic2bert_project.read("data/07_model_output/fold_metrics_ic2bert.parquet")
    assert metrics["auroc"].notna().all() and (metrics.loc[metrics.protocol == "transfer", "trial"] == 0).all()
    history = ic2bert_project.read("data/07_model_output/ic2bert/pretrain_history.parquet")
    assert sorted(history["held_out"].unique()) == cohorts
    for cohort in cohorts:  # a held-out cohort never enters its own pretraining pool
        split = ic2bert_project.read(f"data/05_model_input/ic2bert/{namespace_for(cohort)}/pretrain_split.parquet")
        assert not split["sample_key"].str.startswith(cohort + ":").any()
    assert (ic2bert_project.path / "data/06_models/ic2bert" / namespace_for(cohorts[0]) / "pretrain").is_dir()
    sample_size = pd.read_csv(ic2bert_project.path / "data/08_reporting/ic2bert/sample_size.csv")
    assert sorted(sample_size["n_train"].unique()) == [0, 4]


def test_models_are_registered_and_the_predict_pipeline_scores_a_cohort(ic2bert_project) -> None:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=ic2bert_project.tracking_uri, registry_uri=ic2bert_project.tracking_uri)
    names = {m.name for m in client.search_registered_models()}
    assert {f"icb_ic2bert_{namespace_for(c)}" for c in discover_cohorts()} <= names
    scores = ic2bert_project.read("data/07_model_output/ic2bert_scores.parquet")
    assert len(scores) == 27 and scores["y_prob"].between(0, 1).all()  # Hugo2016, scored by the Miao model
    assert scores["model_uri"].iloc[0] == "models:/icb_ic2bert_fold_Kidney_ICB_Miao2018/latest"
    experiment = client.get_experiment_by_name("icb_kedro")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.model = 'ic2bert'")
    assert {r.data.tags["protocol"] for r in runs} >= {"transfer", "within", "loco"}  # fold child runs (project hook)
