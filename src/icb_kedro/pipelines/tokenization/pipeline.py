"""tokenization pipeline: the IC2Bert input table, then one namespace per held-out cohort
(``fold_<cohort>``: split the pretraining pool -> fit tokenizer -> tokenize).

The cohort list comes from the data directory (``icb_kedro.paths.discover_cohorts``), the
held-out cohort is bound into each namespace's nodes, so kedro-viz shows every fold and
``kedro run --namespaces fold_<cohort>`` re-runs one.
"""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.wiring import bind, fold_inputs

from .nodes import fit_tokenizer, select_model_input, split_pretraining_pool, tokenize_samples


def fold_pipeline(cohort: str) -> Pipeline:
    template = Pipeline(
        [
            Node(
                bind(split_pretraining_pool, held_out=cohort),
                inputs={"lodocv_folds": "folds", "params": "params:tokenization"},
                outputs="ic2bert_pretrain_split",
                name="ic2bert_split_pretraining_pool",
            ),
            Node(
                fit_tokenizer,
                inputs={
                    "model_input": "ic2bert_model_input",
                    "pretrain_split": "ic2bert_pretrain_split",
                    "params": "params:tokenization",
                },
                outputs="ic2bert_tokenizer",
                name="ic2bert_fit_tokenizer",
            ),
            Node(
                tokenize_samples,
                inputs={"model_input": "ic2bert_model_input", "tokenizer": "ic2bert_tokenizer"},
                outputs="ic2bert_tokens",
                name="ic2bert_tokenize",
            ),
        ]
    )
    return Pipeline(
        template,
        namespace=namespace_for(cohort),
        inputs=fold_inputs(cohort, "ic2bert_model_input"),
        parameters={"params:tokenization"},
    )


def create_pipeline(cohorts: list[str] | None = None, **kwargs) -> Pipeline:
    cohorts = discover_cohorts() if cohorts is None else cohorts
    select = Node(
        select_model_input,
        inputs=[
            "expression_standardized",
            "harmonized_expression",
            "gene_panels",
            "params:tokenization",
        ],
        outputs="ic2bert_model_input",
        name="ic2bert_select_model_input",
    )
    return Pipeline([select]) + sum((fold_pipeline(c) for c in cohorts), Pipeline([]))
