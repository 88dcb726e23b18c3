"""The cross-model evaluation pipeline: gathering, the results table, summaries, plots, and the
default study DAG that orders it after every model pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.pipelines.evaluation.nodes import build_results_table, gather_predictions, plot_results, summarize_results
from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS


def _predictions(model: str, signal: float, seed: int) -> pd.DataFrame:
    """Two cohorts x two trials of 20 patients; `signal` separates responders from the rest."""
    rng = np.random.default_rng(seed)
    rows = []
    for cohort in ("A", "B"):
        y = np.array([1] * 8 + [0] * 12)
        for trial in (0, 1):
            p = 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(size=y.size))))
            for i, (label, prob) in enumerate(zip(y, p, strict=True)):
                rows.append((model, "transfer", cohort, trial, f"{cohort}:s{i}", label, prob, 80, 0.5))
    return pd.DataFrame(rows, columns=list(PREDICTION_COLUMNS))


@pytest.fixture(scope="module")
def predictions() -> pd.DataFrame:
    return gather_predictions(_predictions("strong", 3.0, 0), _predictions("chance", 0.0, 1))


def test_gather_stacks_models_and_refuses_a_name_used_by_two_pipelines(predictions) -> None:
    assert predictions.groupby("model").size().to_dict() == {"chance": 80, "strong": 80}
    with pytest.raises(ValueError, match=r"\['strong'\] appear in more than one"):
        gather_predictions(_predictions("strong", 3.0, 0), _predictions("strong", 1.0, 2))


def test_results_table_has_one_row_per_scored_fold(predictions) -> None:
    table = build_results_table(predictions)
    assert list(table.columns) == list(FOLD_METRIC_COLUMNS)
    assert len(table) == 2 * 2 * 2  # models x cohorts x trials
    assert table.set_index("model").loc["strong", "auroc"].min() > 0.9


def test_summaries_rank_the_informative_model_and_call_the_difference_significant(predictions) -> None:
    params = {"n_boot": 200, "seed": 0, "reference_models": ["chance", "absent_model"]}
    cohorts, overall, comparisons, text = summarize_results(predictions, params)
    assert {"ci_low", "ci_high"} <= set(cohorts.columns) and {"ci_low", "ci_high"} <= set(overall.columns)
    best = overall.sort_values("auroc_mean", ascending=False).iloc[0]
    assert best["model"] == "strong" and best["ci_low"] > 0.8
    pooled = comparisons[(comparisons["model_a"] == "strong") | (comparisons["model_b"] == "strong")]
    assert pooled["significant"].any() and "strong" in text and "chance" in text
    again = summarize_results(predictions, params)
    pd.testing.assert_frame_equal(again[1], overall)  # same seed -> same numbers


def test_plots_cover_every_protocol(predictions) -> None:
    params = {"n_boot": 50, "seed": 0, "reference_models": []}
    cohorts, overall, _, _ = summarize_results(predictions, params)
    figures = plot_results(predictions, cohorts, overall)
    assert set(figures) == {"overall_auroc.png", "cohort_auroc_transfer.png", "roc_pr_transfer.png"}
    assert all(fig.axes for fig in figures.values())


def test_default_run_orders_evaluation_and_interpretation_after_every_model() -> None:
    from kedro.framework.startup import bootstrap_project

    from pathlib import Path

    bootstrap_project(Path(__file__).resolve().parents[3])
    from icb_kedro.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    default = pipelines["__default__"]
    names = {n.name for n in default.nodes}
    for model in ("baselines", "amu", "ic2bert_finetune"):
        assert {n.name for n in pipelines[model].nodes} <= names
    assert not {n.name for n in pipelines["predict"].nodes} & names
    # No dangling mirror: interpretation reads the models' real outputs inside the study run.
    assert "predictions_ic2bert" in default.all_inputs() and "predictions_amu" in default.all_inputs()
    order = [n.name for n in default.nodes]  # topologically sorted
    assert order.index("gather_predictions") > max(order.index(n.name) for n in pipelines["amu"].nodes if "predictions_amu" in n.outputs)
