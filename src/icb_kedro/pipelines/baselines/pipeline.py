"""baselines pipeline: one node per model family (kedro-viz shows each; ``--nodes`` re-runs one),
the signature branch (parse -> coverage -> scores -> per-fold predictions, once on the cohort
panel for the LODOCV protocols and once on the AMU matrix for ``amu_holdout``), then the shared
evaluation (fold metrics -> MLflow child runs via the project hook, summaries, comparisons,
report, plots).

Reads ``expression_standardized`` + ``gene_panels`` + ``lodocv_folds`` (LODOCV protocols) and
``amu_matrix`` + ``amu_holdout_folds`` (the AMU study setting); never re-splits.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from icb_kedro.models.baselines.estimators import MODEL_FAMILIES
from icb_kedro.panels import select_panel_features
from icb_kedro.wiring import CELLS, bind, on_fold_cells

from .nodes import (
    check_amu_signature_coverage,
    check_signature_coverage,
    combine_predictions,
    combine_search_logs,
    compare_models,
    compute_fold_metrics,
    compute_signature_scores,
    fit_deployment_baseline,
    fit_predict_model,
    parse_signatures,
    plot_overall,
    plot_protocol_figures,
    predict_amu_signatures,
    predict_signatures,
    score_amu_signatures,
    summarize_cohorts,
    summarize_overall,
    write_summary_markdown,
)

PLOTTED_PROTOCOLS: tuple[str, ...] = ("transfer", "loco", "within", "amu_holdout")


def _model_node(model: str) -> Node:
    return Node(
        on_fold_cells(bind(fit_predict_model, model_name=model), "lodocv_folds"),
        inputs={
            "features": "baselines_features",
            "lodocv_folds": "lodocv_folds",
            "amu_matrix": "amu_matrix",
            "amu_holdout_folds": "amu_holdout_folds",
            "params": "params:baselines",
            "cells": CELLS,
        },
        outputs=[f"baselines_predictions_{model}", f"baselines_search_log_{model}"],
        name=f"baselines_fit_{model}",
    )


def _plot_node(protocol: str) -> Node:
    return Node(
        bind(plot_protocol_figures, protocol=protocol),
        inputs={"cohort_table": "baselines_cohort_summary", "predictions": "predictions_baselines"},
        outputs=[f"baselines_cohort_auroc_{protocol}_plot", f"baselines_roc_pr_{protocol}_plot"],
        name=f"baselines_plot_{protocol}",
    )


def create_pipeline(**kwargs) -> Pipeline:
    models = [_model_node(m) for m in MODEL_FAMILIES]
    signatures = [
        Node(
            parse_signatures,
            "baselines_signature_files",
            "baselines_signatures",
            name="baselines_parse_signatures",
        ),
        Node(
            check_signature_coverage,
            ["baselines_signatures", "gene_panels", "params:baselines.signatures"],
            "signature_coverage",
            name="baselines_signature_coverage",
        ),
        Node(
            compute_signature_scores,
            [
                "harmonized_expression",
                "expression_standardized",
                "gene_panels",
                "baselines_signatures",
                "signature_coverage",
                "params:baselines.signatures",
            ],
            "baselines_signature_scores",
            name="baselines_score_signatures",
        ),
        Node(
            on_fold_cells(predict_signatures, "lodocv_folds"),
            {
                "signature_scores": "baselines_signature_scores",
                "lodocv_folds": "lodocv_folds",
                "params": "params:baselines",
                "cells": CELLS,
            },
            "baselines_predictions_signatures",
            name="baselines_predict_signatures",
        ),
        # The same signatures on the AMU matrix (amu_holdout): no training, same test rows.
        Node(
            check_amu_signature_coverage,
            ["baselines_signatures", "amu_matrix", "params:baselines.signatures"],
            "baselines_amu_signature_coverage",
            name="baselines_amu_signature_coverage",
        ),
        Node(
            score_amu_signatures,
            [
                "amu_matrix",
                "baselines_signatures",
                "baselines_amu_signature_coverage",
                "params:baselines",
            ],
            "baselines_amu_signature_scores",
            name="baselines_score_amu_signatures",
        ),
        Node(
            predict_amu_signatures,
            ["baselines_amu_signature_scores", "amu_holdout_folds", "params:baselines"],
            "baselines_predictions_amu_signatures",
            name="baselines_predict_amu_signatures",
        ),
    ]
    evaluation = [
        Node(
            combine_predictions,
            [
                *(f"baselines_predictions_{m}" for m in MODEL_FAMILIES),
                "baselines_predictions_signatures",
                "baselines_predictions_amu_signatures",
            ],
            "predictions_baselines",
            name="baselines_combine_predictions",
        ),
        Node(
            combine_search_logs,
            [f"baselines_search_log_{m}" for m in MODEL_FAMILIES],
            "baselines_search_log",
            name="baselines_combine_search_logs",
        ),
        Node(
            compute_fold_metrics,
            "predictions_baselines",
            "fold_metrics_baselines",
            name="baselines_fold_metrics",
        ),
        # The best family by held-out AUROC, refitted on every labelled patient and
        # registered as icb_baseline (kedro-mlflow; the project hook sets @champion).
        Node(
            fit_deployment_baseline,
            {
                "features": "baselines_features",
                "cohort_table": "baselines_cohort_summary",
                "params": "params:baselines",
            },
            "baseline_registered_model",
            name="baselines_register_best_model",
        ),
        Node(
            summarize_cohorts,
            ["predictions_baselines", "params:baselines.evaluation"],
            "baselines_cohort_summary",
            name="baselines_cohort_summary",
        ),
        Node(
            summarize_overall,
            ["predictions_baselines", "params:baselines.evaluation"],
            "baselines_overall_summary",
            name="baselines_overall_summary",
        ),
        Node(
            compare_models,
            ["predictions_baselines", "params:baselines.evaluation"],
            "baselines_comparisons",
            name="baselines_paired_comparisons",
        ),
        Node(
            write_summary_markdown,
            [
                "baselines_overall_summary",
                "baselines_cohort_summary",
                "baselines_comparisons",
                "signature_coverage",
                "baselines_search_log",
                "params:baselines",
                "baselines_amu_signature_coverage",
            ],
            "baselines_summary_md",
            name="baselines_summary_markdown",
        ),
        Node(
            plot_overall,
            "baselines_overall_summary",
            "baselines_overall_auroc_plot",
            name="baselines_plot_overall",
        ),
        *(_plot_node(p) for p in PLOTTED_PROTOCOLS),
    ]
    features = Node(
        select_panel_features,
        {
            "expression": "expression_standardized",
            "gene_panels": "gene_panels",
            "panel": "params:baselines.panel",
        },
        "baselines_features",
        name="baselines_select_panel_features",
    )
    return Pipeline([features, *models, *signatures, *evaluation])
