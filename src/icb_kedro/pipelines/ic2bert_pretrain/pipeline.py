"""ic2bert_pretrain pipeline: one pretraining per held-out cohort (namespace ``fold_<cohort>``),
then the cross-fold history table and plot.

The registered ``ic2bert_pretrain`` adds its upstream chain (ingestion, harmonization,
folds, tokenization: ``pipeline_registry.UPSTREAM``), so ``kedro run --pipelines
ic2bert_pretrain`` runs everything it needs; ``create_pipeline()`` is the pretraining alone.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.wiring import bind

from .nodes import combine_pretrain_histories, plot_pretrain_curves, pretrain_fold


def fold_pipeline(cohort: str) -> Pipeline:
    ns = namespace_for(cohort)
    template = Pipeline(
        [
            Node(
                bind(pretrain_fold, held_out=cohort),
                inputs={
                    "tokens": "ic2bert_tokens",
                    "pretrain_split": "ic2bert_pretrain_split",
                    "tokenizer": "ic2bert_tokenizer",
                    "params": "params:ic2bert_pretrain",
                },
                outputs=["ic2bert_pretrained", "ic2bert_pretrain_history", "ic2bert_mlm_metrics"],
                name="ic2bert_pretrain",
            )
        ]
    )
    # Cross-fold consumers need an un-dotted name (kedro_notes.md pitfall).
    return Pipeline(
        template,
        namespace=ns,
        outputs={"ic2bert_pretrain_history": f"ic2bert_pretrain_history_{ns}"},
        parameters={"params:ic2bert_pretrain"},
    )


def pretrain_nodes(cohorts: list[str] | None = None) -> Pipeline:
    cohorts = discover_cohorts() if cohorts is None else cohorts
    folds = sum((fold_pipeline(c) for c in cohorts), Pipeline([]))
    combine = Pipeline(
        [
            Node(
                combine_pretrain_histories,
                [f"ic2bert_pretrain_history_{namespace_for(c)}" for c in cohorts],
                "ic2bert_pretrain_history",
                name="ic2bert_combine_pretrain_histories",
            ),
            Node(
                plot_pretrain_curves,
                "ic2bert_pretrain_history",
                "ic2bert_pretrain_plot",
                name="ic2bert_plot_pretraining",
            ),
        ]
    )
    return folds + combine


def create_pipeline(cohorts: list[str] | None = None, **kwargs) -> Pipeline:
    """The pretraining nodes alone; the registry adds their upstream chain."""
    return pretrain_nodes(cohorts)
