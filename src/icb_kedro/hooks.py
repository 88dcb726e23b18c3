"""Project hooks: one nested MLflow run per scored LODOCV fold.

kedro-mlflow opens the parent run of every ``kedro run`` and logs parameters; it has no
notion of folds (kedro-mlflow#120). This hook adds the missing piece without putting
MLflow calls in nodes: every node output named ``fold_metrics*`` (last dotted part; a
DataFrame with ``schema.FOLD_METRIC_COLUMNS``) becomes one child run per row, addressed
by explicit run id through ``MlflowClient`` so that interleaved fold order and thread
switches cannot mis-attribute metrics (see kedro_notes.md, section 3).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
from kedro.framework.hooks import hook_impl

from icb_kedro.schema import METRICS

logger = logging.getLogger(__name__)

FOLD_KEYS = ("model", "protocol", "cohort", "trial")
FOLD_PARAMS = ("n_train", "n_test", "n_test_pos")


def is_fold_metrics_dataset(name: str) -> bool:
    """True for ``fold_metrics_<model>`` and namespaced ``<ns>.fold_metrics_<...>``."""
    return name.rsplit(".", 1)[-1].startswith("fold_metrics")


def log_fold_runs(table: pd.DataFrame, dataset: str, parent_run_id: str, experiment_id: str) -> list[str]:
    """Create one finished child run per row of a fold-metrics table; return their ids."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    run_ids = []
    now = pd.Timestamp.now().value // 1_000_000
    for row in table.to_dict(orient="records"):
        name = "|".join(str(row.get(k, "")) for k in FOLD_KEYS)
        tags = {"mlflow.parentRunId": parent_run_id, "mlflow.runName": name, "dataset": dataset}
        tags.update({k: str(row[k]) for k in FOLD_KEYS if k in row})
        run = client.create_run(experiment_id, tags=tags, run_name=name)
        metrics = [
            Metric(m, float(row[m]), now, 0)
            for m in METRICS
            if m in row and row[m] is not None and not math.isnan(float(row[m]))
        ]
        params = [Param(p, str(row[p])) for p in FOLD_PARAMS if p in row]
        client.log_batch(
            run.info.run_id, metrics=metrics, params=params, tags=[RunTag("fold", name)]
        )
        client.set_terminated(run.info.run_id, "FINISHED")
        run_ids.append(run.info.run_id)
    return run_ids


class LodocvFoldRunsHook:
    """Turn ``fold_metrics*`` node outputs into nested MLflow runs under the kedro run."""

    @hook_impl
    def after_node_run(self, node: Any, outputs: dict[str, Any]) -> None:
        tables = {
            name: value
            for name, value in outputs.items()
            if is_fold_metrics_dataset(name) and isinstance(value, pd.DataFrame) and len(value)
        }
        if not tables:
            return
        import mlflow

        parent = mlflow.active_run()
        if parent is None:  # tracking disabled for this pipeline, or no kedro-mlflow
            return
        for name, table in tables.items():
            ids = log_fold_runs(table, name, parent.info.run_id, parent.info.experiment_id)
            logger.info("Logged %d fold runs from %s under MLflow run %s", len(ids), name, parent.info.run_id)
