"""ic2bert_finetune pipeline: per held-out cohort (namespace ``fold_<cohort>``) transfer,
within, zero-shot + ensemble, sample-size analysis and registration of the chosen model;
then the cross-fold tables (``predictions_ic2bert``, ``fold_metrics_ic2bert``), summaries
and plots.

The registered ``ic2bert_finetune`` adds the whole upstream chain (ingestion ->
harmonization -> folds -> tokenization -> ic2bert_pretrain: ``pipeline_registry.UPSTREAM``),
so ``kedro run --pipelines ic2bert_finetune`` runs everything it needs (pretraining resumes
from its checkpoints); ``--namespaces fold_<cohort>`` redoes one cohort.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.wiring import CELLS, bind, fold_inputs, on_fold_cells

from .nodes import (
    combine_predictions,
    combine_tables,
    compute_fold_metrics,
    finetune_transfer,
    finetune_within,
    learning_check,
    plot_auroc,
    plot_sample_size,
    readout_features_table,
    register_best_model,
    sample_size_analysis,
    summarize_cohorts,
    summarize_learning_check,
    summarize_sample_size,
    zero_shot_and_ensemble,
)

PARAMS = "params:ic2bert_finetune"
# Per-fold tables exposed under un-dotted names "<kind>_<namespace>" for the cross-fold nodes.
PREDICTION_KINDS = (
    "ic2bert_transfer_predictions",
    "ic2bert_within_predictions",
    "ic2bert_loco_predictions",
)
HISTORY_KINDS = ("ic2bert_transfer_history", "ic2bert_within_history", "ic2bert_loco_history")
OTHER_KINDS = ("ic2bert_sample_size_predictions", "ic2bert_registry_record")


def _fold_node(
    func, cohort: str, outputs, name: str, features: bool = True, cells: bool = True
) -> Node:
    """A node of one held-out cohort; ``cells``: it scores the folds ``params:folds.cells``
    selects (the sample-size analysis has a fixed design of its own and reads every fold)."""
    inputs = {
        "tokens": "ic2bert_tokens",
        "folds": "folds",
        "pretrained": "ic2bert_pretrained",
        "params": PARAMS,
    }
    if features:
        inputs["features"] = "ic2bert_readout_features"
    func = bind(func, held_out=cohort)
    if cells:
        func, inputs["cells"] = on_fold_cells(func), CELLS
    return Node(func, inputs=inputs, outputs=outputs, name=name)


def fold_pipeline(cohort: str) -> Pipeline:
    ns = namespace_for(cohort)
    template = Pipeline(
        [
            Node(
                bind(readout_features_table, held_out=cohort),
                inputs={
                    "tokens": "ic2bert_tokens",
                    "pretrained": "ic2bert_pretrained",
                    "params": PARAMS,
                },
                outputs="ic2bert_readout_features",
                name="ic2bert_readout_features",
            ),
            Node(
                on_fold_cells(bind(finetune_transfer, held_out=cohort)),
                inputs={
                    "tokens": "ic2bert_tokens",
                    "folds": "folds",
                    "cells": CELLS,
                    "pretrained": "ic2bert_pretrained",
                    "params": PARAMS,
                    "model_input": "params:tokenization.input",
                    "features": "ic2bert_readout_features",
                },
                outputs=[
                    "ic2bert_transfer_predictions",
                    "ic2bert_transfer_history",
                    "ic2bert_best_model",
                ],
                name="ic2bert_finetune_transfer",
            ),
            _fold_node(
                finetune_within,
                cohort,
                ["ic2bert_within_predictions", "ic2bert_within_history"],
                "ic2bert_train_within",
                features=False,
            ),
            _fold_node(
                zero_shot_and_ensemble,
                cohort,
                ["ic2bert_loco_predictions", "ic2bert_loco_history"],
                "ic2bert_zero_shot_and_ensemble",
            ),
            _fold_node(
                sample_size_analysis,
                cohort,
                "ic2bert_sample_size_predictions",
                "ic2bert_sample_size_analysis",
                cells=False,
            ),
            Node(
                bind(register_best_model, held_out=cohort),
                inputs={"best_model": "ic2bert_best_model", "params": PARAMS},
                outputs=["ic2bert_registered_model", "ic2bert_registry_record"],
                name="ic2bert_register_best_model",
            ),
        ]
    )
    exposed = {kind: f"{kind}_{ns}" for kind in (*PREDICTION_KINDS, *HISTORY_KINDS, *OTHER_KINDS)}
    return Pipeline(
        template,
        namespace=ns,
        inputs=fold_inputs(cohort),
        outputs=exposed,
        parameters={PARAMS, "params:tokenization.input", CELLS},
    )


def finetune_nodes(cohorts: list[str] | None = None) -> Pipeline:
    cohorts = discover_cohorts() if cohorts is None else cohorts
    per_fold = sum((fold_pipeline(c) for c in cohorts), Pipeline([]))

    def each(kind: str) -> list[str]:
        return [f"{kind}_{namespace_for(c)}" for c in cohorts]

    cross_fold = Pipeline(
        [
            Node(
                combine_predictions,
                [name for kind in PREDICTION_KINDS for name in each(kind)],
                "predictions_ic2bert",
                name="ic2bert_combine_predictions",
            ),
            Node(
                compute_fold_metrics,
                "predictions_ic2bert",
                "fold_metrics_ic2bert",
                name="ic2bert_fold_metrics",
            ),
            Node(
                summarize_cohorts,
                ["predictions_ic2bert", PARAMS],
                "ic2bert_cohort_summary",
                name="ic2bert_cohort_summary",
            ),
            Node(
                plot_auroc, "fold_metrics_ic2bert", "ic2bert_auroc_plot", name="ic2bert_plot_auroc"
            ),
            Node(
                combine_tables,
                [name for kind in HISTORY_KINDS for name in each(kind)],
                "ic2bert_finetune_history",
                name="ic2bert_combine_finetune_histories",
            ),
            Node(
                learning_check,
                ["predictions_ic2bert", "ic2bert_finetune_history"],
                "ic2bert_learning_check",
                name="ic2bert_learning_check",
            ),
            Node(
                summarize_learning_check,
                "ic2bert_learning_check",
                "ic2bert_learning_summary",
                name="ic2bert_summarize_learning_check",
            ),
            Node(
                combine_tables,
                each("ic2bert_sample_size_predictions"),
                "ic2bert_sample_size_predictions",
                name="ic2bert_combine_sample_size",
            ),
            Node(
                summarize_sample_size,
                "ic2bert_sample_size_predictions",
                "ic2bert_sample_size",
                name="ic2bert_summarize_sample_size",
            ),
            Node(
                plot_sample_size,
                "ic2bert_sample_size",
                "ic2bert_sample_size_plot",
                name="ic2bert_plot_sample_size",
            ),
            Node(
                combine_tables,
                each("ic2bert_registry_record"),
                "ic2bert_registered_models",
                name="ic2bert_combine_registry",
            ),
        ]
    )
    return per_fold + cross_fold


def create_pipeline(cohorts: list[str] | None = None, **kwargs) -> Pipeline:
    """The fine-tuning nodes alone; the registry adds pretraining and its upstream chain."""
    return finetune_nodes(cohorts)
