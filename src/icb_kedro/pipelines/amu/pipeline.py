"""amu pipeline: AMU (PaddlePaddle) on the AMU study matrix and on the cohorts.

- study setting: ``amu_matrix`` + ``amu_holdout_folds`` -> honest ``amu_holdout`` and the
  paper's leaky ``amu_holdout_leaky`` (only if listed in ``amu.study.protocols``), plus
  an audit of the leaky protocol's duplicated validation rows;
- the cohorts: one namespaced node per held-out cohort (``fold_<cohort>``; visible and
  re-runnable in kedro-viz / ``--namespaces``) running its transfer / loco / within folds;
- results: ``predictions_amu`` -> ``fold_metrics_amu`` (one MLflow child run per row, via
  the project hook) -> summaries, ROC/PR and confusion-matrix figures, a markdown report;
- final model: all labelled cohort samples -> ``amu_gene_embeddings`` and the pyfunc
  registered as ``icb_amu``.

Reads the foundation datasets; never re-splits. Paddle is loaded only inside nodes.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.wiring import CELLS, bind, on_fold_cells

from .nodes import (
    build_pyfunc_model,
    combine_predictions,
    compute_fold_metrics,
    export_gene_embeddings,
    leakage_audit,
    learning_check,
    plot_confusion,
    plot_roc_pr,
    run_cohort_protocols,
    run_study_protocols,
    summarize,
    train_final_model,
    write_report,
)


def _cohort_node(cohort: str) -> Node:
    ns = namespace_for(cohort)
    return Node(
        on_fold_cells(bind(run_cohort_protocols, held_out=cohort), "lodocv_folds"),
        inputs={
            "harmonized_expression": "harmonized_expression",
            "expression_standardized": "expression_standardized",
            "gene_panels": "gene_panels",
            # The fold table of this cohort (not the combined one): keeps fold_<cohort> a
            # valid kedro-viz namespace that no outside node interrupts.
            "lodocv_folds": f"lodocv_folds_{ns}",
            "params": "params:amu",
            "cells": CELLS,
        },
        outputs=[f"amu_predictions_{ns}", f"amu_weights_{ns}"],
        name="amu_run_cohort_protocols",
        namespace=ns,
    )


def create_pipeline(cohorts: list[str] | None = None, **kwargs) -> Pipeline:
    cohorts = discover_cohorts() if cohorts is None else cohorts
    per_cohort = [_cohort_node(c) for c in cohorts]
    expression = {
        "harmonized_expression": "harmonized_expression",
        "expression_standardized": "expression_standardized",
        "gene_panels": "gene_panels",
        "params": "params:amu",
    }
    return Pipeline(
        [
            Node(
                run_study_protocols,
                ["amu_matrix", "amu_holdout_folds", "params:amu"],
                ["amu_predictions_study", "amu_weights_study"],
                name="amu_run_study_protocols",
            ),
            Node(
                leakage_audit,
                ["amu_matrix", "amu_holdout_folds", "params:amu"],
                "amu_leakage_audit",
                name="amu_leakage_audit",
            ),
            *per_cohort,
            Node(
                combine_predictions,
                ["amu_predictions_study", *(n.outputs[0] for n in per_cohort)],
                "predictions_amu",
                name="amu_combine_predictions",
            ),
            Node(
                compute_fold_metrics, "predictions_amu", "fold_metrics_amu", name="amu_fold_metrics"
            ),
            Node(
                learning_check,
                ["predictions_amu", "amu_weights_study", *(n.outputs[1] for n in per_cohort)],
                "amu_learning_check",
                name="amu_learning_check",
            ),
            Node(
                summarize,
                ["predictions_amu", "params:amu"],
                ["amu_cohort_summary", "amu_overall_summary"],
                name="amu_summarize",
            ),
            Node(
                plot_roc_pr,
                ["predictions_amu", "fold_metrics_amu"],
                "amu_roc_pr_plot",
                name="amu_plot_roc_pr",
            ),
            Node(
                plot_confusion, "predictions_amu", "amu_confusion_plot", name="amu_plot_confusion"
            ),
            Node(
                write_report,
                [
                    "amu_overall_summary",
                    "amu_cohort_summary",
                    "amu_leakage_audit",
                    "amu_learning_check",
                ],
                "amu_summary_md",
                name="amu_write_report",
            ),
            Node(train_final_model, expression, "amu_final_model", name="amu_train_final_model"),
            Node(
                export_gene_embeddings,
                "amu_final_model",
                "amu_gene_embeddings",
                name="amu_export_gene_embeddings",
            ),
            Node(
                build_pyfunc_model,
                "amu_final_model",
                "amu_registered_model",
                name="amu_register_model",
            ),
        ]
    )
