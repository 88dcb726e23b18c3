"""The deployable AMU: one fit on every labelled cohort sample, and what is made from it.

:func:`fit_final_model` fits the network on all labelled samples of the cohorts that
measure the whole panel (cohort settings) and returns it as a plain dict (the fitted
network plus its input scale, pseudo-count and cohorts); :func:`gene_embedding_table`
exports its learned gene embeddings and :func:`pyfunc_model` wraps it as the MLflow pyfunc.
Paddle loads only inside these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.schema import COHORT, LABEL

from .inputs import cohort_features, network_config
from .train_config import TrainConfig, lone_fit_threads, with_seed  # plain data, no Paddle

logger = logging.getLogger(__name__)


def fit_final_model(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    *,
    source: str,
    panel: str,
    pseudo_count: float,
    model: Mapping[str, Any] | None,
    train_config: TrainConfig,
    n_jobs: int,
    seed: int,
) -> dict[str, Any]:
    """The deployable AMU: every labelled sample of the cohorts, cohort settings (one fit,
    so it gets every worker's threads: the fused engine's numbers do not depend on them).

    No model is chosen by test scores: its expected performance is what the loco/transfer
    protocols measured with the same settings. ``model``: the network settings (``amu.model``;
    ``n_genes`` comes from the panel); ``train_config``: the recipe, fitted with ``seed``.
    """
    from icb_kedro.models.amu.train import fit_network

    features, labels, genes, scale = cohort_features(
        harmonized_expression, expression_standardized, gene_panels, source, panel, pseudo_count
    )
    labelled = labels[labels.notna()].astype(int)
    config = with_seed(lone_fit_threads(train_config, n_jobs, n_fits=1), seed)
    fitted = fit_network(
        features.loc[labelled.index].to_numpy(),
        labelled.to_numpy(),
        model_config=network_config(model, len(genes)),
        train_config=config,
        features=genes,
    )
    cohorts_seen = sorted(
        harmonized_expression.loc[harmonized_expression[LABEL].notna(), COHORT].unique()
    )
    logger.info(
        "amu final model: %d samples of %d cohorts, %d genes, %.0f s",
        fitted.n_train,
        len(cohorts_seen),
        len(genes),
        fitted.fit_seconds,
    )
    return {
        **asdict(fitted),
        "input_scale": scale,
        "pseudo_count": pseudo_count,
        "cohorts": cohorts_seen,
    }


def _as_fitted(final_model: dict[str, Any]):
    from icb_kedro.models.amu.fitted_network import FittedNetwork

    fields = set(FittedNetwork.__dataclass_fields__)
    return FittedNetwork(**{k: v for k, v in final_model.items() if k in fields})


def gene_embedding_table(final_model: dict[str, Any]) -> pd.DataFrame:
    """One row per gene, columns ``gene, dim_0 .. dim_<D-1>``."""
    table = np.asarray(final_model["state"]["gene_embedding.weight"], dtype=np.float64)
    if table.shape[0] != len(final_model["features"]):
        raise ValueError(
            f"embedding table has {table.shape[0]} rows for {len(final_model['features'])} genes"
        )
    frame = pd.DataFrame(table, columns=[f"dim_{i}" for i in range(table.shape[1])])
    frame.insert(0, "gene", final_model["features"])
    return frame


def pyfunc_model(final_model: dict[str, Any]):
    """The MLflow pyfunc of the final model (an ``AmuPyfuncModel``)."""
    from icb_kedro.models.amu.pyfunc import AmuPyfuncModel

    return AmuPyfuncModel(
        _as_fitted(final_model), final_model["input_scale"], final_model["pseudo_count"]
    )
