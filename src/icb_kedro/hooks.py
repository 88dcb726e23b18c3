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


HOST_TAG, PID_TAG = "icb.host", "icb.pid"


def _process_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def mark_orphaned_runs_killed(client: Any, host: str) -> list[str]:
    """MLflow runs of this project left ``RUNNING`` by a killed ``kedro run`` on ``host``
    (their process, tagged ``icb.pid``, is gone) are marked ``KILLED``; returns their ids.

    kedro-mlflow ends its run as FAILED on an exception, but a ``kill -9`` (or the OOM
    killer, or a CI time-out) ends nothing, and the MLflow UI would show the run as running
    forever. Runs from other hosts are left alone: their process cannot be checked here.
    """
    killed = []
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return killed
    runs = client.search_runs(experiments, filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'")
    for run in runs:
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and not _process_alive(int(pid)):
            client.set_terminated(run.info.run_id, "KILLED")
            killed.append(run.info.run_id)
    if killed:
        logger.warning("Marked %d MLflow run(s) of killed kedro runs as KILLED: %s", len(killed), killed)
    return killed


class OrphanedRunsHook:
    """Tag the kedro run's MLflow run with host and pid, and at the next start mark the runs
    whose process died without ending them (``kill -9``) as ``KILLED``."""

    def __init__(self) -> None:
        self._tagged: str | None = None

    @hook_impl
    def before_node_run(self) -> None:
        import os
        import socket

        import mlflow

        run = mlflow.active_run()
        if run is None or self._tagged == run.info.run_id:
            return
        # The first node of this kedro run: clean up the orphans, then tag this run.
        mark_orphaned_runs_killed(mlflow.MlflowClient(), socket.gethostname())
        mlflow.set_tags({HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())})
        self._tagged = run.info.run_id


# Registered-model datasets of the catalog -> their MLflow registered model name (the
# catalog's save_args.registered_model_name; tests/test_hooks_registry.py checks they agree).
IC2BERT_REGISTERED_SUFFIX = ".ic2bert_registered_model"
REGISTERED_MODEL_TAGS = ("held_out", "protocol", "trial", "readout_kind", "selection", "inner_val_score", "stage")


def registered_model_name(dataset_name: str) -> str | None:
    if dataset_name.endswith(IC2BERT_REGISTERED_SUFFIX):
        return f"icb_ic2bert_{dataset_name.removesuffix(IC2BERT_REGISTERED_SUFFIX)}"
    if dataset_name == "amu_registered_model":
        return "icb_amu"
    return None


def promote_to_champion(client: Any, name: str, tags: dict[str, str] | None = None) -> str | None:
    """The newest version of ``name`` becomes ``@champion`` (tagged with how it was chosen);
    the version that was champion before becomes ``@challenger``. Returns the version."""
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        return None
    newest = str(max(int(v.version) for v in versions))
    try:
        previous = client.get_model_version_by_alias(name, "champion").version
    except Exception:  # noqa: BLE001 - no champion yet
        previous = None
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, newest, key, str(value))
    if previous is not None and str(previous) != newest:
        client.set_registered_model_alias(name, "challenger", str(previous))
    client.set_registered_model_alias(name, "champion", newest)
    return newest


class RegistryAliasHook:
    """After a model is registered, point ``@champion`` at it (``@challenger`` at the one it
    replaces), so users load ``models:/<name>@champion`` rather than "latest"."""

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        name = registered_model_name(dataset_name)
        if name is None:
            return
        import mlflow

        metadata = data.get("metadata", {}) if isinstance(data, dict) else {}
        tags = {key: metadata[key] for key in REGISTERED_MODEL_TAGS if key in metadata}
        version = promote_to_champion(mlflow.MlflowClient(), name, tags)
        logger.info("Registered model %s version %s is @champion", name, version)
