"""Node tags (model family, protocol) for kedro-viz's filter and `kedro run --tags`."""

from __future__ import annotations

from pathlib import Path

from icb_kedro.tags import node_tags

PROJECT = Path(__file__).resolve().parents[1]


def test_node_tags_from_names():
    assert node_tags("baselines_fit_xgboost") == {
        "model.xgboost",
        "protocol.transfer",
        "protocol.loco",
        "protocol.within",
        "protocol.amu_holdout",
    }
    assert node_tags("fold_Kidney_ICB_Miao2018.ic2bert_finetune_transfer") == {
        "model.ic2bert",
        "protocol.transfer",
    }
    assert node_tags("fold_Kidney_ICB_Miao2018.ic2bert_zero_shot_and_ensemble") == {
        "model.ic2bert",
        "protocol.loco",
    }
    assert node_tags("interpretation_shap_cohorts_svm") == {"model.svm"}
    assert node_tags("baselines_score_amu_signatures") == {"model.signatures"}
    assert node_tags("baselines_plot_amu_holdout") == {"protocol.amu_holdout"}
    assert node_tags("fold_X.amu_run_cohort_protocols") == {
        "model.amu",
        "protocol.transfer",
        "protocol.loco",
        "protocol.within",
    }
    assert node_tags("ingest_cohorts") == set() and node_tags("make_amu_holdout_folds") == set()


def test_registered_pipelines_filter_to_one_model():
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT)
    study = pipelines["study"]
    ic2bert = study.only_nodes_with_tags("model.ic2bert")
    assert ic2bert.nodes and all("ic2bert" in n.name for n in ic2bert.nodes)
    assert {n.name for n in study.only_nodes_with_tags("model.xgboost").nodes} == {
        "baselines_fit_xgboost",
        "interpretation_shap_cohorts_xgboost",
        "interpretation_shap_study_xgboost",
    }
    transfer = study.only_nodes_with_tags("protocol.transfer")
    assert any(n.name.endswith("ic2bert_finetune_transfer") for n in transfer.nodes)
    assert len(pipelines["__default__"].nodes) == len(
        {n.name for n in pipelines["__default__"].nodes}
    )  # no duplicated nodes
