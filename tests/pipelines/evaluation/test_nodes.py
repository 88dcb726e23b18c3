"""The cross-model evaluation pipeline: gathering, the results table, summaries, plots, and the
default study DAG that orders it after every model pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.pipeline import Pipeline

from icb_kedro.pipelines.evaluation.nodes import (
    build_results_table,
    gather_predictions,
    plot_results,
    summarize_results,
)
from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS


def _predictions(model: str, signal: float, seed: int) -> pd.DataFrame:
    """Two cohorts x two repeats of 20 patients (two splits of 10 each);
    `signal` separates responders from the rest."""
    rng = np.random.default_rng(seed)
    rows = []
    for cohort in ("A", "B"):
        y = np.array([1] * 8 + [0] * 12)
        for trial in (0, 1):
            p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=y.size))))
            for i, (label, prob) in enumerate(zip(y, p, strict=True)):
                rows.append(
                    (
                        model,
                        "transfer",
                        cohort,
                        trial,
                        2 * trial + i % 2,
                        f"{cohort}:s{i}",
                        label,
                        prob,
                        80,
                        0.5,
                    )
                )
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))


@pytest.fixture(scope="module")
def predictions() -> pd.DataFrame:
    return gather_predictions(_predictions("strong", 3.0, 0), _predictions("chance", 0.0, 1))


def test_gather_stacks_models_and_refuses_a_name_used_by_two_pipelines(predictions) -> None:
    assert predictions.groupby("model").size().to_dict() == {"chance": 80, "strong": 80}
    with pytest.raises(ValueError, match=r"\['strong'\] appear in more than one"):
        gather_predictions(_predictions("strong", 3.0, 0), _predictions("strong", 1.0, 2))


def test_gather_leaves_out_pipelines_not_run_but_needs_one() -> None:
    table = gather_predictions(None, _predictions("strong", 3.0, 0), None)
    assert set(table["model"]) == {"strong"}
    with pytest.raises(ValueError, match="no model predictions on disk"):
        gather_predictions(None, None, None)


def test_evaluation_reads_the_models_predictions_by_their_real_names(tmp_path) -> None:
    from icb_kedro.datasets import OptionalDataset
    from icb_kedro.pipelines.evaluation import create_pipeline

    assert create_pipeline().inputs() >= {
        f"predictions_{m}" for m in ("baselines", "ic2bert", "amu")
    }
    # The catalog entries are optional and writable: the producer saves through them, a
    # reader gets None when the model was never run.
    dataset = OptionalDataset(
        {"type": "icb_kedro.datasets.ParquetDataset", "filepath": str(tmp_path / "p.parquet")},
        writable=True,
    )
    assert dataset.load() is None
    dataset.save(pd.DataFrame({"a": [1]}))
    assert dataset.load()["a"].tolist() == [1]


def test_any_combination_of_pipelines_runs_evaluation_after_its_models() -> None:
    """`kedro run --pipelines ingestion,harmonization,folds,baselines,evaluation` (a user's
    combination, summed by Kedro, not the registry) orders evaluation after baselines."""
    from pathlib import Path

    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path(__file__).resolve().parents[3])
    from icb_kedro.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    for models in (
        ["baselines"],
        ["ingestion", "harmonization", "folds", "baselines"],
        ["amu"],
        ["ic2bert_finetune"],
    ):
        combined = sum((pipelines[name] for name in [*models, "evaluation"]), Pipeline([]))
        order = [n.name for n in combined.nodes]  # topologically sorted
        producers = [
            n.name for n in combined.nodes if any(o.startswith("predictions_") for o in n.outputs)
        ]
        assert producers and all(
            order.index("gather_predictions") > order.index(p) for p in producers
        ), models


def test_results_table_has_one_row_per_scored_fold(predictions) -> None:
    table = build_results_table(predictions)
    assert list(table.columns) == list(FOLD_METRIC_COLUMNS)
    assert len(table) == 2 * 2 * 2  # models x cohorts x repeats
    assert table.set_index("model").loc["strong", "auroc"].min() > 0.9


def test_summaries_rank_the_informative_model_and_call_the_difference_significant(
    predictions,
) -> None:
    params = {"n_boot": 200, "seed": 0, "reference_models": ["chance", "absent_model"]}
    cohorts, overall, comparisons, meta, text = summarize_results(predictions, params)
    assert {"ci_low", "ci_high"} <= set(cohorts.columns) and {"ci_low", "ci_high"} <= set(
        overall.columns
    )
    best = overall.sort_values("auroc_mean", ascending=False).iloc[0]
    assert best["model"] == "strong" and best["ci_low"] > 0.8
    pooled = comparisons[
        (comparisons["model_a"] == "strong") | (comparisons["model_b"] == "strong")
    ]
    assert pooled["significant"].any() and "strong" in text and "chance" in text
    pairs = comparisons[comparisons["cohort"] == "ALL"].apply(
        lambda r: frozenset((r.model_a, r.model_b)), axis=1
    )
    assert not pairs.duplicated().any()  # each unordered pair once, whatever the references
    strong = meta.set_index("model").loc["strong"]  # random-effects pool over the cohorts
    assert (
        strong["k"] == 2 and strong["pooled_auroc"] > 0.9 and "Random-effects meta-analysis" in text
    )
    again = summarize_results(predictions, params)
    pd.testing.assert_frame_equal(again[1], overall)  # same seed -> same numbers
    pd.testing.assert_frame_equal(again[3], meta)


def test_plots_cover_every_protocol(predictions) -> None:
    params = {"n_boot": 50, "seed": 0, "reference_models": []}
    cohorts, overall, _, meta, _ = summarize_results(predictions, params)
    figures = plot_results(predictions, cohorts, overall, meta)
    assert set(figures) == {
        "overall_auroc.png",
        "meta_forest_transfer.png",
        "cohort_auroc_transfer.png",
        "roc_pr_transfer.png",
        "reliability_transfer.png",
    }
    assert all(fig.axes for fig in figures.values())


def test_default_run_orders_evaluation_and_interpretation_after_every_model() -> None:
    from pathlib import Path

    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path(__file__).resolve().parents[3])
    from icb_kedro.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    study, default = pipelines["study"], pipelines["__default__"]
    for model in ("baselines", "amu", "ic2bert_finetune"):
        assert {n.name for n in pipelines[model].nodes} <= {n.name for n in study.nodes}
    for model in ("baselines", "amu", "ic2bert_finetune"):  # the main job runs every model
        assert {n.name for n in pipelines[model].nodes} <= {n.name for n in default.nodes}
    assert not {n.name for n in pipelines["predict"].nodes} & {n.name for n in study.nodes}
    # Inside a run the reports read the models' real outputs (ordered after them); what the
    # run does not produce is read from disk through the optional mirrors.
    assert {
        "predictions_ic2bert",
        "predictions_baselines",
        "predictions_amu",
    } <= default.all_inputs()
    assert "predictions_amu" not in default.inputs()  # produced by the main job itself
    assert "predictions_amu" in study.all_inputs() and "predictions_amu" not in study.inputs()
    # by name, evaluation reads whatever is on disk through its optional mirrors
    assert "predictions_amu" in pipelines["evaluation"].inputs()
    order = [n.name for n in study.nodes]  # topologically sorted
    producer = next(n.name for n in study.nodes if "predictions_amu" in n.outputs)
    assert order.index("gather_predictions") > order.index(producer)
    assert order.index("interpretation_report") > order.index("gather_predictions")
