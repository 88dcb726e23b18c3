"""interpretation pipeline: which genes drive the predictions, do they matter for survival,
and the study report.

Branches (each a thin node over ``icb_kedro.interpretation``):

- SHAP on fold test rows: SVM / XGBoost refitted per fold like the baselines pipeline
  (AMU study setting and the cohorts' ``loco`` folds), AMU from its persisted fold
  networks, IC2Bert from its fine-tuned fold bundles (+ attention / permutation importance);
- gene rankings and their top-k overlap across models;
- AMU gene embeddings (t-SNE, clusters, neighbours vs co-expression / signatures);
- enrichment of top genes in the shipped signatures; Cox per top gene; KM per model;
- the HTML report (+ its PNGs) under ``data/08_reporting/interpretation``, logged to MLflow.

Inputs written by other pipelines are read under their real names. Their catalog entries
are writable ``OptionalDataset``s (``None`` when the producer has not been run), so ``kedro
run --pipelines interpretation`` works with any subset of the model pipelines run before it
and reports the rest as "not run", and any combination such as ``--pipelines
baselines,interpretation`` runs this pipeline after the pipelines it reads from (Kedro orders
nodes by the dataset names they share).
"""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.wiring import MODEL_PIPELINES, bind

from .nodes import (
    analyse_amu_embeddings,
    build_report,
    cox_random_gene_null,
    cox_top_genes,
    enrich_top_genes,
    explain_amu_cohorts,
    explain_amu_study,
    explain_baseline,
    explain_ic2bert,
    ic2bert_top_k_frequency,
    km_summary,
    parse_signature_sets,
    rank_genes,
    shap_stability,
    top_gene_overlap,
)

BASELINE_MODELS: tuple[str, ...] = ("svm", "xgboost")
SHAP_TABLES: tuple[str, ...] = (
    "interpretation_shap_study_svm",
    "interpretation_shap_study_xgboost",
    "interpretation_shap_study_amu",
    "interpretation_shap_cohorts_svm",
    "interpretation_shap_cohorts_xgboost",
    "interpretation_shap_cohorts_amu",
    "interpretation_shap_cohorts_ic2bert",
)


def _baseline_node(setting: str, model: str) -> Node:
    return Node(
        bind(explain_baseline, model=model, setting=setting),
        inputs={
            "expression": "expression_standardized",
            "gene_panels": "gene_panels",
            "lodocv_folds": "lodocv_folds",
            "amu_matrix": "amu_matrix",
            "amu_holdout_folds": "amu_holdout_folds",
            "search_log": "baselines_search_log",
            "baselines_params": "params:baselines",
            "shap_params": "params:interpretation.shap",
        },
        outputs=f"interpretation_shap_{setting}_{model}",
        name=f"interpretation_shap_{setting}_{model}",
    )


def _base_pipeline(cohorts: list[str], models: Sequence[str]) -> Pipeline:
    amu_fold_weights = [f"amu_weights_{namespace_for(c)}" for c in cohorts]
    ic2bert_models = [f"{namespace_for(c)}.ic2bert_best_model" for c in cohorts]
    report_inputs = {
        "cohort_summary": "cohort_summary",
        "panel_coverage": "panel_coverage",
        "harmonized_expression": "harmonized_expression",
        "expression_standardized": "expression_standardized",
        "expression_combat": "expression_combat",
        "clinical_table": "clinical_table",
        "all_predictions": "all_predictions",
        **{f"predictions_{m}": f"predictions_{m}" for m in models},
        "results_cohort_summary": "results_cohort_summary",
        "results_overall_summary": "results_overall_summary",
        "results_comparisons": "results_comparisons",
        "results_summary_md": "results_summary_md",
        "results_meta_analysis": "results_meta_analysis",
        "results_calibration": "results_calibration",
        "ic2bert_pretrain_history": "ic2bert_pretrain_history",
        "ic2bert_sample_size": "ic2bert_sample_size",
        "ic2bert_learning_summary": "ic2bert_learning_summary",
        "amu_learning_check": "amu_learning_check",
        **{name.removeprefix("interpretation_"): name for name in SHAP_TABLES},
        "rankings": "interpretation_gene_rankings",
        "overlap": "interpretation_top_gene_overlap",
        "stability": "interpretation_shap_stability",
        "ic2bert_importance": "interpretation_ic2bert_importance",
        "ic2bert_frequency": "interpretation_ic2bert_top_k_frequency",
        "embedding_map": "interpretation_amu_embedding_map",
        "embedding_pairs": "interpretation_amu_embedding_pairs",
        "embedding_summary": "interpretation_amu_embedding_summary",
        "embedding_cosine": "interpretation_amu_embedding_cosine",
        "enrichment_table": "interpretation_enrichment",
        "cox": "interpretation_cox",
        "cox_null": "interpretation_cox_null",
        "km": "interpretation_km_summary",
        "params": "params:interpretation",
    }
    return Pipeline(
        [
            Node(
                parse_signature_sets,
                "interpretation_signature_files",
                "interpretation_gene_sets",
                name="interpretation_parse_signatures",
            ),
            *(
                _baseline_node(setting, model)
                for setting in ("study", "cohorts")
                for model in BASELINE_MODELS
            ),
            Node(
                explain_amu_study,
                [
                    "amu_matrix",
                    "amu_holdout_folds",
                    "amu_weights_study",
                    "params:amu",
                    "params:interpretation.shap",
                ],
                "interpretation_shap_study_amu",
                name="interpretation_shap_study_amu",
            ),
            Node(
                explain_amu_cohorts,
                [
                    "harmonized_expression",
                    "expression_standardized",
                    "lodocv_folds",
                    "params:amu",
                    "params:interpretation.shap",
                    *amu_fold_weights,
                ],
                "interpretation_shap_cohorts_amu",
                name="interpretation_shap_cohorts_amu",
            ),
            Node(
                explain_ic2bert,
                [
                    "harmonized_expression",
                    "expression_standardized",
                    "lodocv_folds",
                    "params:interpretation.ic2bert",
                    "params:interpretation.shap",
                    *ic2bert_models,
                ],
                ["interpretation_ic2bert_importance", "interpretation_shap_cohorts_ic2bert"],
                name="interpretation_ic2bert_importance",
            ),
            Node(
                ic2bert_top_k_frequency,
                ["interpretation_ic2bert_importance", "params:interpretation.ic2bert"],
                "interpretation_ic2bert_top_k_frequency",
                name="interpretation_ic2bert_top_k_frequency",
            ),
            Node(
                rank_genes,
                list(SHAP_TABLES),
                "interpretation_gene_rankings",
                name="interpretation_rank_genes",
            ),
            Node(
                shap_stability,
                [*SHAP_TABLES, "params:interpretation.rankings"],
                "interpretation_shap_stability",
                name="interpretation_shap_stability",
            ),
            Node(
                top_gene_overlap,
                ["interpretation_gene_rankings", "params:interpretation.rankings"],
                "interpretation_top_gene_overlap",
                name="interpretation_top_gene_overlap",
            ),
            Node(
                analyse_amu_embeddings,
                [
                    "amu_weights_study",
                    "amu_gene_embeddings",
                    "amu_matrix",
                    "interpretation_gene_sets",
                    "params:interpretation.embeddings",
                ],
                [
                    "interpretation_amu_embedding_map",
                    "interpretation_amu_embedding_pairs",
                    "interpretation_amu_embedding_summary",
                    "interpretation_amu_embedding_cosine",
                ],
                name="interpretation_amu_embeddings",
            ),
            Node(
                enrich_top_genes,
                [
                    "interpretation_gene_rankings",
                    "interpretation_gene_sets",
                    "params:interpretation.enrichment",
                ],
                "interpretation_enrichment",
                name="interpretation_enrichment",
            ),
            Node(
                cox_top_genes,
                [
                    "interpretation_gene_rankings",
                    "harmonized_expression",
                    "clinical_table",
                    "params:interpretation.survival",
                ],
                "interpretation_cox",
                name="interpretation_cox_per_gene",
            ),
            Node(
                cox_random_gene_null,
                [
                    "interpretation_cox",
                    "harmonized_expression",
                    "clinical_table",
                    "gene_panels",
                    "params:interpretation.survival",
                ],
                "interpretation_cox_null",
                name="interpretation_cox_random_gene_null",
            ),
            Node(
                km_summary,
                [
                    "clinical_table",
                    "params:interpretation.survival",
                    "all_predictions",
                    *(f"predictions_{m}" for m in models),
                ],
                "interpretation_km_summary",
                name="interpretation_km_by_prediction",
            ),
            Node(
                build_report,
                report_inputs,
                ["interpretation_report", "interpretation_report_figures"],
                name="interpretation_report",
            ),
        ]
    )


def create_pipeline(
    cohorts: list[str] | None = None, models: Sequence[str] = MODEL_PIPELINES, **kwargs
) -> Pipeline:
    """The interpretation pipeline over ``cohorts`` (default: every cohort on disk); the
    report and the survival analysis read the predictions of ``models`` (the registry passes
    every scored model, ``pipeline_registry.scored_models``)."""
    return _base_pipeline(discover_cohorts() if cohorts is None else cohorts, models)
