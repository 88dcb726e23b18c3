"""Nodes of the cross-model evaluation pipeline (all statistics live in icb_kedro.evaluation)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from icb_kedro.evaluation import summary
from icb_kedro.schema import PREDICTION_COLUMNS

from .config import EvaluationConfig

logger = logging.getLogger(__name__)


def gather_predictions(*model_predictions: pd.DataFrame | None) -> pd.DataFrame:
    """Stack every model pipeline's predictions (same folds, same columns) into one table.

    ``None`` = that model pipeline has not been run (an optional input): it is left out and
    logged; at least one table is needed.
    """
    present = [p for p in model_predictions if p is not None]
    if not present:
        raise ValueError(
            "no model predictions on disk (data/07_model_output/predictions_<model>.parquet): run "
            "a model pipeline first, e.g. `kedro run --pipelines baselines`"
        )
    if len(present) < len(model_predictions):
        logger.info(
            "evaluation: %d of %d model pipelines have predictions on disk",
            len(present),
            len(model_predictions),
        )
    frames = [summary.validate_predictions(p)[list(PREDICTION_COLUMNS)] for p in present]
    table = pd.concat(frames, ignore_index=True)
    duplicated = table.duplicated(["model", "protocol", "cohort", "repeat", "sample_key"])
    if duplicated.any():
        clash = table.loc[duplicated, "model"].unique().tolist()
        raise ValueError(
            f"model name(s) {clash} appear in more than one model pipeline's predictions"
        )
    return table


def build_results_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """The one tidy results table: one row per scored repeat (model, protocol, cohort, repeat)."""
    return summary.fold_metrics(predictions)


def summarize_results(
    predictions: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """Per-cohort and overall summaries with bootstrap CIs, paired comparisons, the
    random-effects meta-analysis across cohorts, markdown."""
    from icb_kedro.evaluation.meta_analysis import auroc_meta_analysis

    config = EvaluationConfig.of(params, "params:evaluation")
    n_boot, seed = config.n_boot, config.seed
    bootstrap = summary.cohort_bootstrap(
        predictions, n_boot=n_boot, seed=seed
    )  # drawn once, used three times
    cohorts, overall = bootstrap.cohorts, summary.overall_from_bootstrap(bootstrap)
    available = set(predictions["model"])
    references = [ref for ref in config.reference_models if ref in available]
    # One call: each unordered pair once, and one Benjamini-Hochberg family per protocol over
    # every test made (not one family per reference model).
    comparisons = (
        summary.paired_comparisons(
            predictions, reference_model=references, n_boot=n_boot, seed=seed
        )
        if references
        else pd.DataFrame()
    )
    meta = auroc_meta_analysis(predictions, config.meta_analysis.model_dump(), bootstrap)
    text = summary.summary_markdown(overall, cohorts, comparisons, meta)
    return cohorts, overall, comparisons, meta, text


def calibration_bins(params: dict[str, Any]) -> int:
    """``evaluation.calibration.n_bins``: the one bin count of the table and the
    reliability plots."""
    return EvaluationConfig.of(params, "params:evaluation").calibration.n_bins


def assess_calibration(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Brier decomposition, calibration-in-the-large and slope per (model, protocol), cohorts
    pooled and per cohort (``evaluation.calibration``)."""
    from icb_kedro.evaluation.calibration import calibration_table

    return calibration_table(predictions, n_bins=calibration_bins(params))


def plot_results(
    predictions: pd.DataFrame,
    cohort_table: pd.DataFrame,
    overall: pd.DataFrame,
    meta: pd.DataFrame | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Overall AUROC, per-cohort AUROC with CIs, ROC/PR and reliability curves, and the
    meta-analysis forest plot, one figure per protocol."""
    from icb_kedro.reporting import plots

    figures = {"overall_auroc.png": plots.plot_overall_auroc(overall)}
    for protocol in sorted(predictions["protocol"].unique()):
        if (
            meta is not None
            and (meta["protocol"] == protocol).any()
            and meta.loc[meta["protocol"] == protocol, "pooled_auroc"].notna().any()
        ):
            figures[f"meta_forest_{protocol}.png"] = plots.plot_meta_forest(meta, protocol)
        figures[f"cohort_auroc_{protocol}.png"] = plots.plot_cohort_auroc(cohort_table, protocol)
        figures[f"roc_pr_{protocol}.png"] = plots.plot_roc_pr_curves(predictions, protocol)
        figures[f"reliability_{protocol}.png"] = plots.plot_reliability(
            predictions, protocol, n_bins=calibration_bins(params or {})
        )
    return figures
