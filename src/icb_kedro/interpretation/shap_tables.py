"""SHAP tables (one row per explained test sample and kind) and what is computed from
them: gene rankings per (setting, protocol, model), top-k stability, top-gene overlap."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from icb_kedro.interpretation import shap_analysis
from icb_kedro.schema import SAMPLE_KEY

if TYPE_CHECKING:
    from icb_kedro.pipelines.interpretation.config import Rankings

logger = logging.getLogger(__name__)


# Columns of the per-model SHAP tables (``interpretation_shap_<model>``): one row per
# explained test sample and kind ("shap" = SHAP values, "feature" = the model's input
# values of that row, for beeswarm colours), then one column per gene.
SHAP_META_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "cohort",
    "trial",
    SAMPLE_KEY,
    "y_true",
    "kind",
)


RANKING_COLUMNS: tuple[str, ...] = (
    "setting",
    "protocol",
    "model",
    "gene",
    "mean_abs_shap",
    "mean_shap",
    "direction",
    "rank",
    "n_rows",
)


def loaded(value: Any) -> Any:
    """A PartitionedDataset entry is a load callable; everything else is the value itself."""
    return value() if callable(value) else value


def shap_gene_columns(table: pd.DataFrame) -> list[str]:
    """Gene columns of a SHAP table (every column that is not metadata)."""
    return [c for c in table.columns if c not in SHAP_META_COLUMNS]


def explain_rows(
    test_keys: Sequence[str], labels: pd.Series, max_rows: int | None, seed: int
) -> list[str]:
    """A seeded, class-stratified subsample of a fold's test keys (all of them if few).

    KernelSHAP costs ~ rows x nsamples x background model calls, so the number of explained
    rows is capped; stratifying keeps responders among them.
    """
    keys = sorted(test_keys)
    if max_rows is None or len(keys) <= max_rows:
        return keys
    from sklearn.model_selection import train_test_split

    y = labels.loc[keys].astype(int).to_numpy()
    # Stratify only where both sides can hold both classes (a 5-row split leaves 1 row out).
    stratify = (
        y
        if min(np.bincount(y, minlength=2)) >= 2
        and len(keys) - int(max_rows) >= 2
        and int(max_rows) >= 2
        else None
    )
    chosen, _ = train_test_split(
        keys, train_size=int(max_rows), stratify=stratify, random_state=seed
    )
    return sorted(chosen)


def shap_frame(
    model: str,
    protocol: str,
    cohort: str,
    trial: int,
    keys: Sequence[str],
    y_true: np.ndarray,
    values: np.ndarray,
    features: np.ndarray,
    genes: Sequence[str],
) -> pd.DataFrame:
    parts = []
    for kind, matrix in (("shap", values), ("feature", features)):
        meta = pd.DataFrame(
            {
                "model": model,
                "protocol": protocol,
                "cohort": cohort,
                "trial": int(trial),
                SAMPLE_KEY: list(keys),
                "y_true": np.asarray(y_true, dtype=np.int8),
                "kind": kind,
            }
        )
        parts.append(
            pd.concat(
                [meta, pd.DataFrame(np.asarray(matrix, dtype=float), columns=list(genes))], axis=1
            )
        )
    return pd.concat(parts, ignore_index=True)


def empty_shap_table(genes: Sequence[str] = ()) -> pd.DataFrame:
    return pd.DataFrame(columns=[*SHAP_META_COLUMNS, *genes])


def setting_of(protocol: str) -> str:
    """``study`` for the AMU matrix protocols, ``cohorts`` for the cohorts' protocols."""
    return "study" if str(protocol).startswith("amu_holdout") else "cohorts"


def _explained(shap_tables, warn: bool = True):
    """Per (protocol, model) of the SHAP tables: the SHAP and feature rows (same order), the
    genes attributed in every row and the SHAP matrix; models whose predictions were constant
    on the explained rows (all SHAP values 0) are skipped (with a warning if ``warn``)."""
    for table in shap_tables:
        if table is None or table.empty:
            continue
        genes = shap_gene_columns(table)
        for (protocol, model), part in table.groupby(["protocol", "model"], sort=True):
            order = ["cohort", "trial", SAMPLE_KEY]
            shap_rows = part[part["kind"] == "shap"].sort_values(order, kind="mergesort")
            feature_rows = part[part["kind"] == "feature"].sort_values(order, kind="mergesort")
            present = [g for g in genes if shap_rows[g].notna().all()]
            values = shap_rows[present].to_numpy(float)
            if not np.abs(values).max() > 0:  # constant predictions: no gene matters, no ranking
                if warn:
                    logger.warning(
                        "interpretation: %s (%s) predicts a constant on the explained rows; "
                        "all SHAP values are 0",
                        model,
                        protocol,
                    )
                continue
            yield protocol, model, shap_rows, feature_rows, present, values


def rank_genes(*shap_tables: pd.DataFrame | None) -> pd.DataFrame:
    """Per (protocol, model), genes ranked by mean |SHAP| over every explained test row."""
    rows = []
    for protocol, model, shap_rows, feature_rows, present, values in _explained(shap_tables):
        ranking = shap_analysis.shap_gene_ranking(
            values, present, feature_rows[present].to_numpy(float)
        )
        rows.append(
            ranking.assign(
                setting=setting_of(protocol), protocol=protocol, model=model, n_rows=len(shap_rows)
            )
        )
    if not rows:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    return pd.concat(rows, ignore_index=True)[list(RANKING_COLUMNS)]


def shap_stability(shap_tables: Sequence[pd.DataFrame | None], params: Rankings) -> pd.DataFrame:
    """Per (protocol, model): how stable each gene's top ``params.stability_k`` place is
    (``shap_analysis.top_k_stability``: bootstrap of the explained rows within folds, and
    agreement between folds)."""
    k, n_boot, seed = params.stability_k, params.stability_n_boot, params.seed
    rows = []
    for protocol, model, shap_rows, _, present, values in _explained(
        shap_tables, warn=False
    ):  # rank_genes warns
        folds = (shap_rows["cohort"].astype(str) + "|" + shap_rows["trial"].astype(str)).to_numpy()
        stability = shap_analysis.top_k_stability(
            values, present, folds, k=k, n_boot=n_boot, seed=seed
        )
        rows.append(stability.assign(setting=setting_of(protocol), protocol=protocol, model=model))
    columns = ["setting", "protocol", "model", *shap_analysis.STABILITY_COLUMNS]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True)[columns]


def top_gene_overlap(rankings: pd.DataFrame, params: Rankings) -> pd.DataFrame:
    """Per setting and k in ``params.top_k``: genes in any model's top-k and how many
    models list them."""
    columns = ["setting", "k", "n_models_compared", "gene", "n_models", "models", "in_all"]
    parts = []
    for setting, rows in rankings.groupby("setting", sort=True):
        by_model = {model: part for model, part in rows.groupby("model", sort=True)}
        for k in params.top_k:
            table = shap_analysis.top_gene_overlap(by_model, int(k))
            parts.append(table.assign(setting=setting, k=int(k), n_models_compared=len(by_model)))
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def top_genes(rankings: pd.DataFrame, k: int) -> pd.DataFrame:
    """Rows of each model's top-k genes with a non-zero attribution."""
    return rankings[(rankings["rank"] <= k) & (rankings["mean_abs_shap"] > 0)]


def top_gene_union(rankings: pd.DataFrame, k: int) -> list[str]:
    return sorted(set(top_genes(rankings, k)["gene"]))
