"""Nodes of the baselines pipeline: classical models and published signatures on the shared folds.

Thin wrappers: the algorithms live in ``icb_kedro.models.baselines`` (``protocol_runs``: a
model on every fold of every protocol; ``deployment``: the registered baseline;
``signature_predictions``: signature coverage, scores and per-fold predictions;
``fold_tables``: fold arrays and prediction tables), folds and metrics in
``icb_kedro.evaluation``, the summary markdown and figures in
``icb_kedro.reporting.baselines_summary``. Every model and every signature is scored on the
same test rows of the same folds (``iter_protocol_folds`` / ``iter_amu_holdout_folds``) and
written as one ``schema.PREDICTION_COLUMNS`` table, from which all summaries derive.

Each node parses its parameters here (``params:baselines`` -> ``config.BaselinesConfig``,
its ``signatures`` / ``evaluation`` sub-blocks -> ``Signatures`` / ``BaselinesEvaluation``)
and passes the typed objects on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from icb_kedro.evaluation.summary import (
    cohort_summary,
    fold_metrics,
    overall_summary,
    paired_comparisons,
)
from icb_kedro.models.baselines.deployment import refit_deployment_baseline
from icb_kedro.models.baselines.fold_tables import combine_prediction_tables
from icb_kedro.models.baselines.protocol_runs import fit_model_on_protocols, stack_search_logs
from icb_kedro.models.baselines.signature_files import parse_signature_files
from icb_kedro.models.baselines.signature_predictions import (
    amu_signature_coverage,
    amu_signature_predictions,
    cohort_signature_scores,
    lodocv_signature_predictions,
    panel_signature_coverage,
    score_signatures_on_amu_matrix,
)
from icb_kedro.reporting.baselines_summary import baselines_summary_markdown, protocol_figures

from .config import BaselinesConfig, BaselinesEvaluation, Signatures

BLOCK = "params:baselines"


def _config(params: dict[str, Any] | BaselinesConfig) -> BaselinesConfig:
    return BaselinesConfig.of(params, BLOCK)


def _signatures(params: dict[str, Any] | Signatures) -> Signatures:
    return Signatures.of(params, f"{BLOCK}.signatures")


def _evaluation(params: dict[str, Any] | BaselinesEvaluation) -> BaselinesEvaluation:
    return BaselinesEvaluation.of(params, f"{BLOCK}.evaluation")


# ----------------------------------------------------------------------------- models


def fit_predict_model(
    model_name: str,
    features: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One baseline model on every configured protocol: (predictions, search log); see
    :func:`icb_kedro.models.baselines.protocol_runs.fit_model_on_protocols`."""
    return fit_model_on_protocols(
        model_name, features, lodocv_folds, amu_matrix, amu_holdout_folds, _config(params)
    )


# ----------------------------------------------------------------------------- registry


def fit_deployment_baseline(
    features: pd.DataFrame, cohort_table: pd.DataFrame, params: dict[str, Any]
):
    """The registered baseline (``icb_baseline``): the chosen family refitted on every labelled
    patient (:func:`icb_kedro.models.baselines.deployment.refit_deployment_baseline`)."""
    return refit_deployment_baseline(features, cohort_table, _config(params))


# ----------------------------------------------------------------------------- signatures


def parse_signatures(signature_files: Mapping[str, Callable[[], str] | str]) -> pd.DataFrame:
    """The signature folder (a PartitionedDataset of text files) -> one long signature table."""
    return parse_signature_files(signature_files)


def check_signature_coverage(
    signatures: pd.DataFrame, gene_panels: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """``signature_coverage``: which signatures are scored on the panel, which fail and why."""
    return panel_signature_coverage(signatures, gene_panels, _signatures(params))


def compute_signature_scores(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    signatures: pd.DataFrame,
    coverage: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Every sample's score for every scored signature: ``sample_key, cohort, label,
    sig_<NAME>...`` (see ``models.baselines.signature_predictions.cohort_signature_scores``)."""
    return cohort_signature_scores(
        harmonized_expression,
        expression_standardized,
        gene_panels,
        signatures,
        coverage,
        _signatures(params),
    )


def predict_signatures(
    signature_scores: pd.DataFrame, lodocv_folds: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Signature "predictions" on every LODOCV fold's test rows (same rows as the models)."""
    return lodocv_signature_predictions(signature_scores, lodocv_folds, _config(params))


# --------------------------------------------------------------------- signatures on the AMU matrix


def check_amu_signature_coverage(
    signatures: pd.DataFrame, amu_matrix: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """``baselines_amu_signature_coverage``: the coverage table against the AMU matrix's genes."""
    return amu_signature_coverage(signatures, amu_matrix, _signatures(params))


def score_amu_signatures(
    amu_matrix: pd.DataFrame,
    signatures: pd.DataFrame,
    amu_coverage: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Every AMU sample's score for every signature scored on the AMU matrix."""
    return score_signatures_on_amu_matrix(amu_matrix, signatures, amu_coverage, _config(params))


def predict_amu_signatures(
    amu_signature_scores: pd.DataFrame, amu_holdout_folds: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Signature "predictions" on every ``amu_holdout`` fold's test rows (the models' rows)."""
    return amu_signature_predictions(amu_signature_scores, amu_holdout_folds, _config(params))


# ----------------------------------------------------------------------------- results


def combine_predictions(*tables: pd.DataFrame) -> pd.DataFrame:
    """All models' and signatures' predictions in one checked table (sorted)."""
    return combine_prediction_tables(*tables)


def combine_search_logs(*logs: pd.DataFrame) -> pd.DataFrame:
    """The models' search logs in one table (chosen hyper-parameters and timings per fold)."""
    return stack_search_logs(*logs)


def compute_fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """The tidy results table (one row per model x protocol x cohort x trial)."""
    return fold_metrics(predictions)


def summarize_cohorts(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Per (model, protocol, cohort): mean/sd over trials and a patient-bootstrap 95% CI."""
    config = _evaluation(params)
    return cohort_summary(predictions, n_boot=config.n_boot, seed=config.seed)


def summarize_overall(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Per (model, protocol): unweighted mean over cohorts with a CI."""
    config = _evaluation(params)
    return overall_summary(predictions, n_boot=config.n_boot, seed=config.seed)


def compare_models(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Paired AUROC comparisons (DeLong + paired bootstrap per cohort, combined across cohorts)."""
    config = _evaluation(params)
    return paired_comparisons(
        predictions,
        reference_model=config.reference_model,
        n_boot=config.n_boot,
        seed=config.seed,
    )


def write_summary_markdown(
    overall: pd.DataFrame,
    cohort_table: pd.DataFrame,
    comparisons: pd.DataFrame,
    coverage: pd.DataFrame,
    search_log: pd.DataFrame,
    params: dict[str, Any],
    amu_coverage: pd.DataFrame | None = None,
) -> str:
    """The baselines report: settings, signature coverage (cohort panel and AMU matrix), then
    the shared evaluation section."""
    return baselines_summary_markdown(
        overall, cohort_table, comparisons, coverage, search_log, _config(params), amu_coverage
    )


def plot_protocol_figures(
    cohort_table: pd.DataFrame, predictions: pd.DataFrame, protocol: str
) -> tuple[Figure, Figure]:
    """Per-cohort AUROC with CIs and pooled ROC/PR curves of one protocol
    (a note if it was not run)."""
    return protocol_figures(cohort_table, predictions, protocol)


def plot_overall(overall: pd.DataFrame) -> Figure:
    """Unweighted mean AUROC over cohorts per model and protocol."""
    from icb_kedro.reporting.plots import plot_overall_auroc

    return plot_overall_auroc(overall)
