"""A trained AMU (or CNN) network as plain data: :class:`FittedNetwork`.

A fitted model is a plain, picklable :class:`FittedNetwork` holding numpy weights (no
Paddle objects), so it travels through Kedro datasets, joblib workers and MLflow.
:func:`icb_kedro.models.amu.train.fit_network` makes one and
:func:`icb_kedro.models.amu.train.load_network` turns it back into a Paddle network; this
module itself needs numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class FittedNetwork:
    """A trained network as plain data: architecture, configs, numpy weights, scaler."""

    architecture: str
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    features: list[str]
    state: dict[str, np.ndarray]
    scaler_mean: np.ndarray | None
    scaler_scale: np.ndarray | None
    loss_history: list[float] = field(default_factory=list)
    n_train: int = 0  # real training rows
    n_synthetic: int = 0  # SMOTE rows added inside fit
    fit_seconds: float = 0.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FittedNetwork:
        """From the plain dict the amu pipeline persists (extra keys, e.g. ``fold``, ignored)."""
        fields = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in fields})

    @property
    def engine(self) -> str:
        """The engine it was trained with ("eager" for the CNN, which has no encoder)."""
        return (
            str(self.train_config.get("engine", "eager")) if self.architecture == "amu" else "eager"
        )

    def gene_embeddings(self) -> np.ndarray:
        """The learned gene-identity table [G, D] (AMU only)."""
        if self.architecture != "amu":
            raise ValueError(
                f"gene embeddings exist for the 'amu' architecture only, not {self.architecture!r}"
            )
        return np.asarray(self.state["gene_embedding.weight"]).copy()
