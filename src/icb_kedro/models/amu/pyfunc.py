"""AMU as an MLflow pyfunc model, and a portable on-disk format for fitted networks.

The pyfunc takes a wide expression table (one row per sample, gene columns on the scale it
was trained on, e.g. harmonized log2(TPM+1); extra columns such as ``sample_key`` are
allowed) and returns a DataFrame with ``y_prob`` = P(responder), plus ``sample_key`` when
the input has one. Load it with ``mlflow.pyfunc.load_model("models:/icb_amu@champion")``.

This module is also the catalog's kedro-mlflow ``flavor`` for ``amu_registered_model``
(``log_model``/``load_model``): it logs the pyfunc with its code (``models.portable``), pinned
requirements, a 160-gene signature and a synthetic input example, so the model loads where
icb_kedro is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from icb_kedro.models.portable import (  # noqa: F401 - load_model: the flavor's loader
    ModelInputError,
    check_log2_tpm1,
    load_model,
    log_pyfunc,
    release_code_path,
)
from icb_kedro.schema import SAMPLE_KEY

from .features import PSEUDO_COUNT, SCALE_LOG2_TPM1, SCALES, amu_features
from .fitted_network import FittedNetwork
from .train import load_network, predict_proba

WEIGHTS_FILE = "weights.npz"
METADATA_FILE = "model.json"


class AmuPyfuncModel(mlflow.pyfunc.PythonModel):
    """P(responder) from a wide expression table, with AMU's own feature transform built in."""

    def __init__(
        self, fitted: FittedNetwork, input_scale: str, pseudo_count: float = PSEUDO_COUNT
    ) -> None:
        if input_scale not in SCALES:
            raise ValueError(
                f"AmuPyfuncModel: unknown input_scale {input_scale!r}; expected one of {SCALES}"
            )
        self.fitted = fitted
        self.input_scale = input_scale
        self.pseudo_count = pseudo_count
        self._network = None  # rebuilt lazily; Paddle objects are never pickled

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_network"] = None
        return state

    def load_context(self, context) -> None:
        release_code_path()  # the project's own icb_kedro, when installed, stays the one imported
        self._network = load_network(self.fitted)

    @property
    def genes(self) -> list[str]:
        return list(self.fitted.features)

    def registry_metadata(self) -> dict[str, Any]:
        """Tags and description of the registered version (read by ``hooks.RegistryAliasHook``)."""
        return {
            "protocol": "final",
            "stage": f"trained on all {self.fitted.n_train} labelled samples of its cohorts",
            "n_genes": len(self.genes),
            "input_transform": self.input_scale,
            "description": (
                f"AMU (transformer over {len(self.genes)} genes' log ratios) trained on "
                f"{self.fitted.n_train} labelled patients ({self.fitted.n_synthetic} oversampled "
                f"rows added inside the fit). Input: samples x {len(self.genes)} genes on the "
                f"{self.input_scale} scale, every gene measured; optional sample_key. Output: "
                "y_prob = P(responder)."
            ),
        }

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """``y_prob`` per input row (``sample_key`` carried over when present)."""
        if not isinstance(model_input, pd.DataFrame):
            raise ModelInputError(
                "AmuPyfuncModel.predict expects a pandas DataFrame, got "
                f"{type(model_input).__name__}"
            )
        if self._network is None:
            self._network = load_network(self.fitted)
        lacking = [
            g
            for g in self.fitted.features
            if g not in model_input.columns or model_input[g].isna().any()
        ]
        if lacking:
            # AMU's missing-gene policy: its ratio encoding needs every panel gene (a cohort
            # lacking some was left out of training too); refuse rather than make values up.
            raise ModelInputError(
                f"AMU needs all {len(self.fitted.features)} panel genes for every sample; the "
                f"input lacks or has missing values in {len(lacking)}: {', '.join(lacking[:20])}"
            )
        if self.input_scale == SCALE_LOG2_TPM1:
            check_log2_tpm1(model_input[self.genes].apply(pd.to_numeric, errors="coerce"), "AMU")
        features = amu_features(
            model_input, self.fitted.features, self.input_scale, self.pseudo_count
        )
        out = pd.DataFrame(
            {"y_prob": predict_proba(self.fitted, features, network=self._network)},
            index=model_input.index,
        )
        if SAMPLE_KEY in model_input.columns:
            out.insert(0, SAMPLE_KEY, model_input[SAMPLE_KEY].to_numpy())
        return out


def log_model(model: AmuPyfuncModel, name: str, **kwargs: Any):
    """kedro-mlflow flavor hook: log the pyfunc with what it needs to travel (see module doc)."""
    return log_pyfunc(
        model, name, "amu", model.genes, "y_prob", extra_inputs=[(SAMPLE_KEY, "string")], **kwargs
    )


def save_fitted(fitted: FittedNetwork, directory: str | Path) -> Path:
    """Write a fitted network as ``weights.npz`` + ``model.json`` (no pickle, no Paddle needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {f"state/{k}": v for k, v in fitted.state.items()}
    if fitted.scaler_mean is not None:
        arrays["scaler/mean"] = fitted.scaler_mean
        arrays["scaler/scale"] = fitted.scaler_scale
    np.savez(directory / WEIGHTS_FILE, **arrays)
    metadata = {
        "architecture": fitted.architecture,
        "model_config": fitted.model_config,
        "train_config": {
            k: list(v) if isinstance(v, tuple) else v for k, v in fitted.train_config.items()
        },
        "features": fitted.features,
        "loss_history": fitted.loss_history,
        "n_train": fitted.n_train,
        "n_synthetic": fitted.n_synthetic,
        "fit_seconds": fitted.fit_seconds,
    }
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=1))
    return directory


def load_fitted(directory: str | Path) -> FittedNetwork:
    """Read what :func:`save_fitted` wrote."""
    directory = Path(directory)
    if not (directory / WEIGHTS_FILE).is_file() or not (directory / METADATA_FILE).is_file():
        raise ValueError(f"load_fitted: {directory} has no {WEIGHTS_FILE} + {METADATA_FILE}")
    metadata = json.loads((directory / METADATA_FILE).read_text())
    with np.load(directory / WEIGHTS_FILE) as arrays:
        state = {k[len("state/") :]: arrays[k] for k in arrays.files if k.startswith("state/")}
        mean = arrays["scaler/mean"] if "scaler/mean" in arrays.files else None
        scale = arrays["scaler/scale"] if "scaler/scale" in arrays.files else None
    return FittedNetwork(state=state, scaler_mean=mean, scaler_scale=scale, **metadata)
