"""Project settings: config resolvers for the data directory and MLflow, and project hooks."""

from __future__ import annotations

import os

from kedro.config import OmegaConfigLoader  # noqa: F401  (the default, named for readers)

from icb_kedro.hooks import (
    LodocvFoldRunsHook,
    OrphanedRunsHook,
    ParametersCheckHook,
    RegistryAliasHook,
)
from icb_kedro.paths import data_dir, project_root

# Telemetry needs the network; CI and offline users must never wait on it.
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")


def _mlflow_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or a SQLite database at the project root.

    MLflow >= 3.13 refuses the old ``./mlruns`` file store, and kedro-mlflow would fall
    back to it, so the default is always an explicit SQLite URI (absolute, so it does not
    depend on the working directory).
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def _mlflow_registry_uri() -> str:
    """``$MLFLOW_REGISTRY_URI`` or the tracking store: set explicitly, so a registry URI left
    in MLflow's process globals (notebooks, tests) never redirects registrations."""
    return os.environ.get("MLFLOW_REGISTRY_URI") or _mlflow_tracking_uri()


HOOKS = (ParametersCheckHook(), LodocvFoldRunsHook(), OrphanedRunsHook(), RegistryAliasHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "custom_resolvers": {
        # ${icb_data_dir:} -> $ICB_DATA_DIR or ../shared/data (see icb_kedro.paths)
        "icb_data_dir": lambda: data_dir(),
        "icb_mlflow_uri": lambda: _mlflow_tracking_uri(),
        "icb_mlflow_registry_uri": lambda: _mlflow_registry_uri(),
    },
    "config_patterns": {
        "mlflow": ["mlflow*", "mlflow*/**", "**/mlflow*"],
    },
    # conf/light and conf/paper hold only the parameters that differ from conf/base: nested
    # keys are merged one by one (a list is replaced whole), not the top-level key replaced.
    "merge_strategy": {"parameters": "soft"},
}
