"""evaluation pipeline: all model pipelines' predictions, scored by one module, side by side.

Inputs are the persisted ``predictions_<model>`` tables of the model pipelines listed in
``MODEL_PIPELINES``, so the DAG orders this after them in a full run, and
``kedro run --pipelines evaluation`` re-scores results already on disk.
"""

from kedro.pipeline import Node, Pipeline

from .nodes import build_results_table, gather_predictions, plot_results, summarize_results

MODEL_PIPELINES = ("baselines", "ic2bert", "amu")


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                gather_predictions,
                inputs=[f"predictions_{m}" for m in MODEL_PIPELINES],
                outputs="all_predictions",
                name="gather_predictions",
            ),
            Node(build_results_table, "all_predictions", "results_table", name="build_results_table"),
            Node(
                summarize_results,
                inputs=["all_predictions", "params:evaluation"],
                outputs=["results_cohort_summary", "results_overall_summary", "results_comparisons", "results_summary_md"],
                name="summarize_results",
            ),
            Node(
                plot_results,
                inputs=["all_predictions", "results_cohort_summary", "results_overall_summary"],
                outputs="results_plots",
                name="plot_results",
            ),
        ]
    )
