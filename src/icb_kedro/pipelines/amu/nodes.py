"""Nodes of the amu pipeline: thin wrappers around ``icb_kedro.models.amu``.

Each node parses ``params:amu`` at its boundary (``config.AmuConfig``: unknown keys, wrong
types and choices are refused, defaults filled in) and calls the algorithm with typed
values: ``models.amu.protocol_runs`` (the study setting, its leakage audit, one held-out
cohort), ``models.amu.results`` (combined predictions, learning check, report),
``models.amu.final_model`` (the deployable model, its gene embeddings and pyfunc),
``models.amu.plots``; the cohorts' feature choice (``amu.cohorts.expression``) is described
in ``models.amu.inputs``.

Paddle is imported only inside ``icb_kedro.models.amu.{model,train,cnn,pyfunc}``; the
nodes that need it import those modules lazily, so building the pipeline (kedro viz,
``kedro registry list``) never loads Paddle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from icb_kedro.evaluation.summary import cohort_summary, fold_metrics, overall_summary
from icb_kedro.models.amu.final_model import fit_final_model, gene_embedding_table, pyfunc_model
from icb_kedro.models.amu.protocol_runs import (
    audit_leaky_splits,
    run_held_out_cohort,
    run_study_setting,
)
from icb_kedro.models.amu.results import combined_predictions, learning_table, report_markdown

from .config import AmuConfig

# ``params:amu`` as Kedro gives it (a plain mapping; AmuConfig.of also passes a parsed block
# through). Not annotated as a union with the model: Kedro would warn that it cannot check it.
AmuParams = Mapping[str, Any]

# ----------------------------------------------------------------------------- study setting


def leakage_audit(
    amu_matrix: pd.DataFrame, amu_holdout_folds: pd.DataFrame, params: AmuParams
) -> pd.DataFrame:
    """``amu_leakage_audit``: validation rows of the paper's protocol that copy training rows."""
    study = AmuConfig.of(params, "params:amu").study
    return audit_leaky_splits(amu_matrix, amu_holdout_folds, study.n_trials, study.test_size)


def run_study_protocols(
    amu_matrix: pd.DataFrame, amu_holdout_folds: pd.DataFrame, params: AmuParams
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The AMU study setting (``amu.study``): predictions and fitted weights."""
    config = AmuConfig.of(params, "params:amu")
    study = config.study
    return run_study_setting(
        amu_matrix,
        amu_holdout_folds,
        protocols=list(study.protocols),
        n_trials=study.n_trials,
        test_size=study.test_size,
        pseudo_count=study.pseudo_count,
        model=config.network(),
        train_config=config.train_config("study"),
        threshold_method=config.threshold_method,
        n_jobs=config.n_jobs,
    )


# ----------------------------------------------------------------------------- the cohorts


def run_cohort_protocols(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    params: AmuParams,
    held_out: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """transfer / loco / within folds of one held-out cohort: predictions and fitted weights."""
    config = AmuConfig.of(params, "params:amu")
    cohorts = config.cohorts
    return run_held_out_cohort(
        harmonized_expression,
        expression_standardized,
        gene_panels,
        lodocv_folds,
        held_out,
        source=cohorts.expression,
        panel=cohorts.panel,
        pseudo_count=cohorts.pseudo_count,
        protocols=list(cohorts.protocols),
        n_repeats=cohorts.n_repeats,
        model=config.network(),
        train_config=config.train_config("cohorts"),
        threshold_method=config.threshold_method,
        n_jobs=config.n_jobs,
    )


# ----------------------------------------------------------------------------- results


def combine_predictions(*tables: pd.DataFrame) -> pd.DataFrame:
    """``predictions_amu``: the study and per-cohort predictions in one validated table."""
    return combined_predictions(*tables)


def learning_check(predictions: pd.DataFrame, *weights: dict[str, Any]) -> pd.DataFrame:
    """``amu_learning_check``: per fold, the fit on its own training rows beside the held-out
    AUROC (``models.amu.results.learning_table``)."""
    return learning_table(predictions, *weights)


def compute_fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """``fold_metrics_amu`` (one MLflow child run per row through the project hook)."""
    return fold_metrics(predictions)


def summarize(predictions: pd.DataFrame, params: AmuParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cohort and overall summaries (evaluation layer: means over trials,
    patient bootstrap CIs)."""
    summary = AmuConfig.of(params, "params:amu").summary
    n_boot, seed = summary.n_boot, summary.seed
    return cohort_summary(predictions, n_boot=n_boot, seed=seed), overall_summary(
        predictions, n_boot=n_boot, seed=seed
    )


def plot_roc_pr(predictions: pd.DataFrame, fold_metrics_amu: pd.DataFrame):
    from icb_kedro.models.amu.plots import plot_roc_pr as plot

    return plot(predictions, fold_metrics_amu)


def plot_confusion(predictions: pd.DataFrame):
    from icb_kedro.models.amu.plots import plot_confusion_matrices

    return plot_confusion_matrices(predictions)


def write_report(
    overall: pd.DataFrame,
    cohort_table: pd.DataFrame,
    audit: pd.DataFrame,
    learning: pd.DataFrame | None = None,
) -> str:
    """``amu_summary_md``: AUROC per protocol (honest vs leaky vs published) beside the
    training fit, per-cohort AUROC, leakage audit."""
    return report_markdown(overall, cohort_table, audit, learning)


# ----------------------------------------------------------------------------- final model


def train_final_model(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    params: AmuParams,
) -> dict[str, Any]:
    """``amu_final_model``: the deployable AMU, fitted on every labelled cohort sample with
    the cohort settings (``models.amu.final_model.fit_final_model``)."""
    config = AmuConfig.of(params, "params:amu")
    cohorts = config.cohorts
    return fit_final_model(
        harmonized_expression,
        expression_standardized,
        gene_panels,
        source=cohorts.expression,
        panel=cohorts.panel,
        pseudo_count=cohorts.pseudo_count,
        model=config.network(),
        train_config=config.train_config("cohorts"),
        n_jobs=config.n_jobs,
        seed=config.final_model.seed,
    )


def export_gene_embeddings(final_model: dict[str, Any]) -> pd.DataFrame:
    """``amu_gene_embeddings``: one row per gene, columns ``gene, dim_0 .. dim_<D-1>``."""
    return gene_embedding_table(final_model)


def build_pyfunc_model(final_model: dict[str, Any]):
    """The MLflow pyfunc (registered as ``icb_amu`` by the catalog's MlflowModelTrackingDataset)."""
    return pyfunc_model(final_model)
