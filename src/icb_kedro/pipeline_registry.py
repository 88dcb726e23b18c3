"""Project pipelines.

``find_pipelines`` picks up every ``pipelines/<name>``. The model pipelines that need the
data chain (e.g. ``ic2bert_finetune``) include their upstream themselves, so
``kedro run --pipelines ic2bert_finetune`` runs everything it needs.

``__default__`` (``kedro run`` / ``make run``) is the whole study: foundation, baselines,
AMU, the IC2Bert chain, the shared evaluation and the interpretation report. ``predict``
scores a *new* expression file with a registered model, so it is never part of it.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from icb_kedro.pipelines.interpretation import create_pipeline as interpretation_pipeline

#: Registered pipelines not summed into the study as registered: ``predict`` never runs by
#: default; ``interpretation`` is added below, wired to the models' real outputs.
NOT_SUMMED = ("interpretation", "predict")


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    # Summing dedups nodes shared by several registered pipelines (same node objects
    # or equal names), giving one DAG for `kedro run`.
    study = sum((p for name, p in pipelines.items() if name not in NOT_SUMMED), Pipeline([]))
    # Interpretation reads other pipelines' outputs through optional mirrors (so it also
    # runs alone on whatever is on disk); inside the study run the mirrors are renamed to
    # the real datasets, which orders it after the models in one DAG.
    pipelines["__default__"] = study + interpretation_pipeline(upstream_outputs=study.all_outputs())
    pipelines["study"] = pipelines["__default__"]
    return pipelines
