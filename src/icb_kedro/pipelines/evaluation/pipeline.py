"""evaluation pipeline: all model pipelines' predictions, scored by one module, side by side.

Inputs are the ``predictions_<model>`` tables of the model pipelines, under their real names:
the registry passes every ``predictions_<name>`` output of the registered model pipelines
(``pipeline_registry.scored_models``), so a new model pipeline is scored without a change
here; ``MODEL_PIPELINES`` is only the default for a direct ``create_pipeline()`` call. Those
catalog entries are optional datasets (``None`` when that model was never run), so ``kedro
run --pipelines evaluation`` re-scores whatever is on disk, and any combination such as
``--pipelines ingestion,harmonization,folds,baselines,evaluation`` runs evaluation after the
models it includes (Kedro orders by the shared dataset names).
"""

from __future__ import annotations

from collections.abc import Sequence

from kedro.pipeline import Node, Pipeline

from icb_kedro.wiring import MODEL_PIPELINES

from .nodes import (
    assess_calibration,
    build_results_table,
    gather_predictions,
    plot_results,
    summarize_results,
)


def create_pipeline(models: Sequence[str] = MODEL_PIPELINES, **kwargs) -> Pipeline:
    base = Pipeline(
        [
            Node(
                gather_predictions,
                # The real names (optional datasets: None when that model was never run), so
                # `kedro run --pipelines baselines,evaluation` orders evaluation after baselines.
                inputs=[f"predictions_{m}" for m in models],
                outputs="all_predictions",
                name="gather_predictions",
            ),
            Node(
                build_results_table, "all_predictions", "results_table", name="build_results_table"
            ),
            Node(
                summarize_results,
                inputs=["all_predictions", "params:evaluation"],
                outputs=[
                    "results_cohort_summary",
                    "results_overall_summary",
                    "results_comparisons",
                    "results_meta_analysis",
                    "results_summary_md",
                ],
                name="summarize_results",
            ),
            Node(
                assess_calibration,
                ["all_predictions", "params:evaluation"],
                "results_calibration",
                name="assess_calibration",
            ),
            Node(
                plot_results,
                inputs=[
                    "all_predictions",
                    "results_cohort_summary",
                    "results_overall_summary",
                    "results_meta_analysis",
                    "params:evaluation",
                ],
                outputs="results_plots",
                name="plot_results",
            ),
        ]
    )
    return base
