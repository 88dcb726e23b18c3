"""interpretation pipeline nodes: each parses its ``params:interpretation.<sub-block>`` with
its typed model (``config.py``) at the boundary and calls the algorithm in
``icb_kedro.interpretation.*`` / ``icb_kedro.reporting.study`` with the typed object.

The algorithms read no parameter dict and hold no parameter default: those live in
``config.py`` only. A node argument is annotated ``Mapping``, not with its model: Kedro would
otherwise swap the model instance into ``context.params`` (see ``icb_kedro.config``).
``params:baselines`` and ``params:amu`` are passed on as Kedro gives them.

Leak-free by construction: every attribution is computed on the TEST rows of a stored
fold (``lodocv_folds`` / ``amu_holdout_folds``), with a model fitted on that fold's
training rows only and a SHAP background drawn from those training rows.

Inputs produced by other pipelines are read under their real names through writable
``OptionalDataset`` entries and may be ``None``: the analysis that needs them is then
listed as "not run" in the report instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from icb_kedro.interpretation import explain_amu, explain_baselines, outcomes
from icb_kedro.interpretation import explain_ic2bert as ic2bert
from icb_kedro.interpretation import shap_tables as tables
from icb_kedro.interpretation.outcomes import parse_signature_sets
from icb_kedro.interpretation.shap_tables import rank_genes
from icb_kedro.reporting.study import study_report

from .config import (
    Embeddings,
    Enrichment,
    Ic2bertImportance,
    InterpretationConfig,
    Rankings,
    Shap,
    Survival,
)

__all__ = [
    "analyse_amu_embeddings",
    "build_report",
    "cox_random_gene_null",
    "cox_top_genes",
    "enrich_top_genes",
    "explain_amu_cohorts",
    "explain_amu_study",
    "explain_baseline",
    "explain_ic2bert",
    "ic2bert_top_k_frequency",
    "km_summary",
    "parse_signature_sets",
    "rank_genes",
    "shap_stability",
    "top_gene_overlap",
]

Params = Mapping[str, Any]
SHAP = "params:interpretation.shap"


def explain_baseline(
    model: str,
    setting: str,
    expression: pd.DataFrame,
    gene_panels: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    search_log: pd.DataFrame | None,
    baselines_params: dict[str, Any],
    shap_params: Params,
) -> pd.DataFrame:
    """SHAP of one baseline (SVM / XGBoost) refitted per fold
    (``explain_baselines.explain_baseline``)."""
    return explain_baselines.explain_baseline(
        model,
        setting,
        expression,
        gene_panels,
        lodocv_folds,
        amu_matrix,
        amu_holdout_folds,
        search_log,
        baselines_params,
        Shap.of(shap_params, SHAP),
    )


def explain_amu_study(
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    weights: Mapping[str, Any] | None,
    amu_params: dict[str, Any],
    shap_params: Params,
) -> pd.DataFrame:
    """KernelSHAP of the AMU study fold networks (``explain_amu.explain_amu_study``)."""
    return explain_amu.explain_amu_study(
        amu_matrix, amu_holdout_folds, weights, amu_params, Shap.of(shap_params, SHAP)
    )


def explain_amu_cohorts(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_params: dict[str, Any],
    shap_params: Params,
    *weights: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """KernelSHAP of the AMU cohort fold networks (``explain_amu.explain_amu_cohorts``)."""
    return explain_amu.explain_amu_cohorts(
        harmonized_expression,
        expression_standardized,
        lodocv_folds,
        amu_params,
        Shap.of(shap_params, SHAP),
        *weights,
    )


def explain_ic2bert(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    params: Params,
    shap_params: Params,
    *bundles: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IC2Bert importance and KernelSHAP per held-out cohort
    (``explain_ic2bert.explain_ic2bert``)."""
    return ic2bert.explain_ic2bert(
        harmonized_expression,
        expression_standardized,
        lodocv_folds,
        Ic2bertImportance.of(params, "params:interpretation.ic2bert"),
        Shap.of(shap_params, SHAP),
        *bundles,
    )


def ic2bert_top_k_frequency(importance_table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Per gene, in how many held-out cohorts' IC2Bert top-k it is (the paper's Table 7)."""
    return ic2bert.ic2bert_top_k_frequency(
        importance_table, Ic2bertImportance.of(params, "params:interpretation.ic2bert")
    )


def shap_stability(*shap_tables_and_params: Any) -> pd.DataFrame:
    """Top-k stability per (protocol, model): the SHAP tables, then
    ``params:interpretation.rankings`` (``shap_tables.shap_stability``)."""
    *shap_tables, params = shap_tables_and_params
    return tables.shap_stability(shap_tables, Rankings.of(params, "params:interpretation.rankings"))


def top_gene_overlap(rankings: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Genes in any model's top-k per setting and k (``shap_tables.top_gene_overlap``)."""
    return tables.top_gene_overlap(rankings, Rankings.of(params, "params:interpretation.rankings"))


def analyse_amu_embeddings(
    weights: Mapping[str, Any] | None,
    gene_embeddings: pd.DataFrame | None,
    amu_matrix: pd.DataFrame,
    gene_sets: pd.DataFrame,
    params: Params,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """AMU gene map, neighbour pairs, permutation summary and similarity matrices
    (``explain_amu.analyse_amu_embeddings``)."""
    return explain_amu.analyse_amu_embeddings(
        weights,
        gene_embeddings,
        amu_matrix,
        gene_sets,
        Embeddings.of(params, "params:interpretation.embeddings"),
    )


def enrich_top_genes(
    rankings: pd.DataFrame, gene_sets: pd.DataFrame, params: Params
) -> pd.DataFrame:
    """ORA of the models' top-k genes (``outcomes.enrich_top_genes``)."""
    return outcomes.enrich_top_genes(
        rankings, gene_sets, Enrichment.of(params, "params:interpretation.enrichment")
    )


def cox_top_genes(
    rankings: pd.DataFrame, expression: pd.DataFrame, clinical: pd.DataFrame, params: Params
) -> pd.DataFrame:
    """Cohort-stratified Cox per top gene (``outcomes.cox_top_genes``)."""
    return outcomes.cox_top_genes(
        rankings, expression, clinical, Survival.of(params, "params:interpretation.survival")
    )


def cox_random_gene_null(
    cox: pd.DataFrame,
    expression: pd.DataFrame,
    clinical: pd.DataFrame,
    gene_panels: pd.DataFrame,
    params: Params,
) -> pd.DataFrame:
    """The top genes' Cox results against random panel genes
    (``outcomes.cox_random_gene_null``)."""
    return outcomes.cox_random_gene_null(
        cox,
        expression,
        clinical,
        gene_panels,
        Survival.of(params, "params:interpretation.survival"),
    )


def km_summary(
    clinical: pd.DataFrame,
    params: Params,
    all_predictions: pd.DataFrame | None = None,
    *model_predictions: pd.DataFrame | None,
) -> pd.DataFrame:
    """KM by predicted response per model and endpoint (``outcomes.km_summary``)."""
    return outcomes.km_summary(
        clinical,
        Survival.of(params, "params:interpretation.survival"),
        all_predictions,
        *model_predictions,
    )


def build_report(params: Params, **sources: Any) -> tuple[str, dict[str, Any]]:
    """The study report node: ``params:interpretation`` (typed) and one mapping of sources
    (``reporting.study.ReportSources``, as wired by the pipeline) -> HTML + its figures."""
    config = InterpretationConfig.of(params, "params:interpretation")
    return study_report(
        sources,
        title=config.report.title,
        top_k=config.report.top_k,
        dpi=config.report.dpi,
        n_boot=config.evaluation.n_boot,
        seed=config.evaluation.seed,
        survival=config.survival,
    )
