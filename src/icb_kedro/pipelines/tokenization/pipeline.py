"""tokenization pipeline: the IC2Bert input table, then one namespace per held-out cohort
(``fold_<cohort>``: split the pretraining pool -> fit tokenizer -> tokenize).

The cohort list comes from the data directory (``icb_kedro.paths.discover_cohorts``), the
held-out cohort is bound into each namespace's nodes, so kedro-viz shows every fold and
``kedro run --namespaces fold_<cohort>`` re-runs one.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from kedro.pipeline import Node, Pipeline

from icb_kedro.paths import discover_cohorts, namespace_for

from .nodes import fit_tokenizer, select_model_input, split_pretraining_pool, tokenize_samples


def fold_table(cohort: str) -> str:
    """The folds pipeline's per-held-out-cohort fold table (output of ``<ns>.make_lodocv_folds``).

    Fold namespaces read this table rather than the combined ``lodocv_folds``: a path
    ``fold_X.make_lodocv_folds -> combine_lodocv_folds -> fold_X.*`` would leave and re-enter
    the namespace, which Kedro flags as an invalid (interrupted) namespace.
    """
    return f"lodocv_folds_{namespace_for(cohort)}"


def fold_inputs(cohort: str, *shared: str) -> dict[str, str]:
    """Namespace input mapping: the fold table under the template name ``folds`` + shared inputs."""
    return {"folds": fold_table(cohort), **{name: name for name in shared}}


def bind(func: Callable, **bound: Any) -> Callable:
    """``func`` with some keyword arguments fixed (e.g. the held-out cohort of a namespace).

    Unlike ``functools.partial`` the result is a function with the remaining signature and
    type hints, so Kedro's node validation and parameter type checks see the real ones.
    """

    @functools.wraps(func)
    def bound_func(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **bound, **kwargs)

    signature = inspect.signature(func)
    bound_func.__signature__ = signature.replace(
        parameters=[p for n, p in signature.parameters.items() if n not in bound]
    )
    bound_func.__annotations__ = {k: v for k, v in func.__annotations__.items() if k not in bound}
    return bound_func


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
