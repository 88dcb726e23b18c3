"""Project pipelines.

``find_pipelines`` picks up every ``pipelines/<name>``. The model pipelines that need the
data chain (e.g. ``ic2bert_finetune``) include their upstream themselves, so
``kedro run --pipelines ic2bert_finetune`` runs everything it needs.
"""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    # Summing dedups nodes shared by several registered pipelines (same node objects
    # or equal names), giving one DAG for `kedro run`.
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    return pipelines
