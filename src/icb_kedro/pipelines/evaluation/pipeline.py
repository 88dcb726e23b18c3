"""evaluation pipeline: all model pipelines' predictions, scored by one module, side by side.

Inputs are the persisted ``predictions_<model>`` tables of the model pipelines listed in
``MODEL_PIPELINES``, read through optional mirrors ``evaluation_input_predictions_<model>``
(``None`` when that pipeline has not been run), so ``kedro run --pipelines evaluation``
re-scores whatever is on disk. In a run that also contains model pipelines (the default
study), build it with ``create_pipeline(upstream_outputs=<their outputs>)``: each mirror
whose real dataset is produced in the run is renamed to it, so Kedro orders this pipeline
after the models.
"""

from __future__ import annotations

from collections.abc import Iterable

from kedro.pipeline import Node, Pipeline, pipeline

from .nodes import build_results_table, gather_predictions, plot_results, summarize_results

MODEL_PIPELINES = ("baselines", "ic2bert", "amu")
MIRROR_PREFIX = "evaluation_input_"


def create_pipeline(upstream_outputs: Iterable[str] | None = None, **kwargs) -> Pipeline:
    base = Pipeline(
        [
            Node(
                gather_predictions,
                inputs=[f"{MIRROR_PREFIX}predictions_{m}" for m in MODEL_PIPELINES],
                outputs="all_predictions",
                name="gather_predictions",
            ),
            Node(build_results_table, "all_predictions", "results_table", name="build_results_table"),
            Node(
                summarize_results,
                inputs=["all_predictions", "params:evaluation"],
                outputs=[
                    "results_cohort_summary", "results_overall_summary", "results_comparisons", "results_meta_analysis",
                    "results_summary_md",
                ],
                name="summarize_results",
            ),
            Node(
                plot_results,
                inputs=["all_predictions", "results_cohort_summary", "results_overall_summary", "results_meta_analysis"],
                outputs="results_plots",
                name="plot_results",
            ),
        ]
    )
    produced = set(upstream_outputs or ())
    renames = {
        name: name.removeprefix(MIRROR_PREFIX)
        for name in base.inputs()
        if name.startswith(MIRROR_PREFIX) and name.removeprefix(MIRROR_PREFIX) in produced
    }
    return pipeline(base, inputs=renames) if renames else base
