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

FOLD_KEYS = ("model", "protocol", "cohort", "repeat")
FOLD_PARAMS = ("n_train", "n_test", "n_test_pos")


def is_fold_metrics_dataset(name: str) -> bool:
    """True for ``fold_metrics_<model>`` and namespaced ``<ns>.fold_metrics_<...>``."""
    return name.rsplit(".", 1)[-1].startswith("fold_metrics")


def log_fold_runs(
    table: pd.DataFrame, dataset: str, parent_run_id: str, experiment_id: str
) -> list[str]:
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
            logger.info(
                "Logged %d fold runs from %s under MLflow run %s",
                len(ids),
                name,
                parent.info.run_id,
            )


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
    runs = client.search_runs(
        experiments, filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    )
    for run in runs:
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and not _process_alive(int(pid)):
            client.set_terminated(run.info.run_id, "KILLED")
            killed.append(run.info.run_id)
    if killed:
        logger.warning(
            "Marked %d MLflow run(s) of killed kedro runs as KILLED: %s", len(killed), killed
        )
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
REGISTERED_MODEL_TAGS = (
    "held_out",
    "protocol",
    "trial",
    "readout_kind",
    "selection",
    "inner_val_score",
    "stage",
    "input_transform",
    "n_genes",
    "pretrain_cohorts",
    "n_finetune_rows",
    "n_finetune_rows_held_out",
    "family",
    "selection_auroc",
    "n_train",
    "training_cohorts",
    "best_params",
    "threshold",
)
#: Cohort tables (``evaluation.summary.cohort_summary``) whose saving writes each IC2Bert
#: champion's measured AUROC [CI]: IC2Bert's own, then the evaluation's (the last one wins).
MEASURED_AUROC_DATASETS = ("ic2bert_cohort_summary", "results_cohort_summary")
#: (protocol of results_cohort_summary, tag) written on an IC2Bert cohort model's champion.
MEASURED_PROTOCOLS = (("transfer", "auroc_transfer"), ("loco", "auroc_zero_shot"))


def registered_model_name(dataset_name: str) -> str | None:
    if dataset_name.endswith(IC2BERT_REGISTERED_SUFFIX):
        # = paths.ic2bert_model_name
        return f"icb_ic2bert_{dataset_name.removesuffix(IC2BERT_REGISTERED_SUFFIX)}"
    if dataset_name == "amu_registered_model":
        return "icb_amu"
    if dataset_name == "baseline_registered_model":
        return "icb_baseline"
    return None


def registration_description(name: str, metadata: dict[str, Any]) -> str:
    """What a registered model is, in words (the MLflow UI shows it on the version page)."""
    if "held_out" not in metadata:
        return f"{name}: see the model's tags for how it was trained."
    return (
        f"IC2Bert for {metadata['held_out']}: encoder pretrained (masked expression, no labels) on "
        f"{metadata.get('pretrain_cohorts', 'the other cohorts')}; "
        f"{metadata.get('stage', 'fine-tuned')} on {metadata.get('n_finetune_rows', '?')} labelled "
        f"training patients, {metadata.get('n_finetune_rows_held_out', '?')} of them from "
        f"{metadata['held_out']} itself (its {metadata.get('protocol', 'transfer')} split "
        f"{metadata.get('trial', '?')}: scoring those patients again is in-sample; chosen "
        f"by {metadata.get('selection', '?')} on training rows only). Input: one whole cohort, "
        f"samples x {metadata.get('n_genes', '?')} panel genes, log2(TPM+1); absent genes enter as "
        "[MISSING]. Output: y_prob = P(responder)."
    )


def measured_auroc_tags(
    cohort_summary: pd.DataFrame, held_out: str, model: str = "ic2bert"
) -> dict[str, str]:
    """``auroc_<protocol>`` tags for one held-out cohort:
    mean over repeats [patient-bootstrap CI]."""
    tags = {}
    for protocol, tag in MEASURED_PROTOCOLS:
        rows = cohort_summary[
            (cohort_summary["model"] == model)
            & (cohort_summary["protocol"] == protocol)
            & (cohort_summary["cohort"] == held_out)
        ]
        if rows.empty or pd.isna(rows["auroc_mean"].iloc[0]):
            continue
        row = rows.iloc[0]
        tags[tag] = (
            f"{row['auroc_mean']:.3f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}] over "
            f"{int(row['n_repeats'])} repeat(s), {int(row['n_patients'])} patients"
        )
    return tags


def describe_champions(
    client: Any, cohort_summary: pd.DataFrame, model_names: dict[str, str]
) -> int:
    """Write the measured AUROC [CI] on the @champion of each ``held_out -> model name``.

    The numbers measure this recipe on the held-out cohort (``transfer``: the cohort's test
    rows out of fold, every repeat; ``zero-shot``: the whole cohort, never trained on), the
    evidence a user of the registered model needs. Returns how many versions were described.
    """
    described = 0
    for held_out, name in model_names.items():
        try:
            champion = client.get_model_version_by_alias(name, "champion")
        except Exception:  # noqa: BLE001 - never registered (pipeline subset): nothing to describe
            continue
        tags = measured_auroc_tags(cohort_summary, held_out)
        if not tags:
            continue
        for key, value in tags.items():
            client.set_model_version_tag(name, champion.version, key, value)
        measured = "; ".join(
            f"{k.removeprefix('auroc_').replace('_', '-')} AUROC {v}" for k, v in tags.items()
        )
        description = (champion.description or "").split("\nMeasured on ")[0]
        client.update_model_version(
            name,
            champion.version,
            description=f"{description}\nMeasured on {held_out}: {measured}.",
        )
        described += 1
    return described


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

    def __init__(self) -> None:
        self._measured: pd.DataFrame | None = None  # the last cohort table seen in this run

    @hook_impl
    def before_pipeline_run(self) -> None:
        self._measured = None  # one hook object serves every session of a process

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any) -> None:
        if dataset_name in MEASURED_AUROC_DATASETS and isinstance(data, pd.DataFrame):
            self._measured = data
            self._describe(data)
            return
        name = registered_model_name(dataset_name)
        if name is None:
            return
        import mlflow

        if isinstance(data, dict):
            metadata = data.get("metadata", {})
        else:  # a pyfunc object (AMU) says what it is itself
            metadata = getattr(data, "registry_metadata", lambda: {})()
        tags = {key: metadata[key] for key in REGISTERED_MODEL_TAGS if key in metadata}
        client = mlflow.MlflowClient()
        version = promote_to_champion(client, name, tags)
        if version is not None:
            client.update_model_version(
                name,
                version,
                description=metadata.get("description") or registration_description(name, metadata),
            )
            if (
                self._measured is not None and "held_out" in metadata
            ):  # the table came first in this run
                describe_champions(client, self._measured, {metadata["held_out"]: name})
        logger.info("Registered model %s version %s is @champion", name, version)

    @staticmethod
    def _describe(cohort_summary: pd.DataFrame) -> None:
        if "model" not in cohort_summary.columns:
            return
        import mlflow

        from icb_kedro.paths import ic2bert_model_name

        cohorts = cohort_summary.loc[cohort_summary["model"] == "ic2bert", "cohort"].unique()
        names = {c: ic2bert_model_name(c) for c in cohorts}
        try:
            described = describe_champions(mlflow.MlflowClient(), cohort_summary, names)
        except Exception as error:  # noqa: BLE001 - a registry that cannot be reached never fails the evaluation
            logger.warning(
                "Could not write the measured AUROC on the registered IC2Bert models: %s", error
            )
            return
        if described:
            logger.info(
                "Wrote the measured AUROC [CI] on %d registered IC2Bert champions", described
            )


def typed_parameters() -> dict[str, type]:
    """``params:<block>`` -> its typed model (``icb_kedro.config``).

    Found, not listed: every ``icb_kedro.pipelines.<name>.config`` module declares the
    blocks it types in ``BLOCKS``, so a plug-in's pipeline types its block without touching
    this file. A block typed twice is an error.
    """
    import importlib
    import pkgutil

    import icb_kedro.pipelines as package

    found: dict[str, type] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if not info.ispkg:
            continue
        try:
            module = importlib.import_module(f"{package.__name__}.{info.name}.config")
        except ModuleNotFoundError as error:
            if error.name == f"{package.__name__}.{info.name}.config":
                continue  # an untyped pipeline
            raise
        for block, model in getattr(module, "BLOCKS", {}).items():
            if block in found:
                raise ValueError(
                    f"params:{block} is typed twice ({found[block].__qualname__}, "
                    f"{model.__qualname__})"
                )
            found[block] = model
    return dict(sorted(found.items()))


def check_parameters(parameters: dict[str, Any], used: Any) -> list[str]:
    """Parse every typed block that the ``used`` dataset names read (``params:<block>...``);
    raise one error listing every problem (unknown keys, wrong types or choices)."""
    read = {name[len("params:") :].split(".")[0] for name in used if name.startswith("params:")}
    models = typed_parameters()
    problems = []
    for block in sorted(read & set(models)):
        try:
            models[block].of(parameters.get(block), f"params:{block}")
        except ValueError as error:
            problems.append(str(error))
    if problems:
        raise ValueError(
            "invalid parameters (conf/<env>/parameters_*.yml, --params):\n- "
            + "\n- ".join(problems)
        )
    return sorted(read & set(models))


class ParametersCheckHook:
    """Fail a run at its start, not hours in, when a typed parameter block it reads is wrong.

    ``tryfirst``: before kedro-mlflow's ``before_pipeline_run`` opens the run, so a bad
    parameter leaves no empty MLflow run behind (Kedro reports no ``on_pipeline_error`` for
    an error raised in ``before_pipeline_run``; MLflow would close that run as FINISHED).
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, pipeline: Any, catalog: Any) -> None:
        checked = check_parameters(catalog.load("parameters"), pipeline.inputs())
        logger.debug("typed parameter blocks checked: %s", checked)
