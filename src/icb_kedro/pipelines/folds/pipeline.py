"""folds pipeline: one namespaced node per held-out cohort (visible and re-runnable in
kedro-viz / ``kedro run --namespaces fold_<cohort>``), concatenated into ``lodocv_folds``.

The cohort list comes from the data directory (``icb_kedro.paths.discover_cohorts``), not
from code: dropping a new cohort's two files in the folder adds its fold.
"""

from kedro.pipeline import Node, Pipeline

from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.wiring import bind

from .nodes import combine_folds, make_amu_holdout_folds, make_lodocv_folds


def _fold_node(cohort: str) -> Node:
    ns = namespace_for(cohort)
    return Node(
        bind(make_lodocv_folds, held_out=cohort),
        inputs={"harmonized_expression": "harmonized_expression", "params": "params:folds.lodocv"},
        outputs=f"lodocv_folds_{ns}",
        name="make_lodocv_folds",
        namespace=ns,
    )


def create_pipeline(cohorts: list[str] | None = None, **kwargs) -> Pipeline:
    cohorts = discover_cohorts() if cohorts is None else cohorts
    per_cohort = [_fold_node(c) for c in cohorts]
    return Pipeline(
        [
            *per_cohort,
            Node(
                combine_folds,
                inputs=[n.outputs[0] for n in per_cohort],
                outputs="lodocv_folds",
                name="combine_lodocv_folds",
            ),
            Node(
                make_amu_holdout_folds,
                inputs=["amu_matrix", "params:folds.amu_holdout"],
                outputs="amu_holdout_folds",
                name="make_amu_holdout_folds",
            ),
        ]
    )
