"""Tables in and out of the baselines' folds: feature matrices, fold arrays, prediction tables.

Every model and every signature is scored on the same test rows of the same folds
(``iter_protocol_folds`` / ``iter_amu_holdout_folds``): this module turns the wide input
tables into (features, labels) and a fold into its training/test arrays (refusing rows
without features or labels), selects the LODOCV folds a run scores, reads the fit settings
from ``params:baselines``, and stacks the per-fold ``schema.PREDICTION_COLUMNS`` tables
into the one checked, sorted table all summaries derive from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import FoldSpec, iter_protocol_folds
from icb_kedro.evaluation.summary import validate_predictions
from icb_kedro.models.amu.features import log_constituent_ratios  # numpy only, no Paddle
from icb_kedro.schema import (
    COHORT,
    LABEL,
    PREDICTION_COLUMNS,
    SAMPLE_KEY,
    empty_predictions,
    gene_columns,
)


def amu_log_features(amu_matrix: pd.DataFrame, pseudo_count: float) -> pd.DataFrame:
    """The AMU matrix with its 160 constituent ratios replaced by ln(ratio + pseudo_count).

    The AMU pipeline's own encoding (``icb_kedro.models.amu.features``; spec item 3: the
    original -ln(ratio) with zeros set to 0 inverted the scale), so AMU and its competitors
    see identical features. Stateless: applying it before splitting leaks nothing.
    """
    genes = [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL, COHORT)]
    logged = log_constituent_ratios(amu_matrix[genes].to_numpy(), pseudo_count)
    table = pd.DataFrame(logged, columns=genes, index=amu_matrix.index)
    return pd.concat([amu_matrix[[SAMPLE_KEY, LABEL]], table], axis=1).assign(**{COHORT: "AMU"})


def labelled_matrix(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Features (index = sample_key) and labels (Int8 with <NA>) of a wide table."""
    indexed = table.set_index(SAMPLE_KEY)
    genes = [c for c in gene_columns(table) if c != SAMPLE_KEY]
    return indexed[genes], indexed[LABEL]


def fold_arrays(
    features: pd.DataFrame, labels: pd.Series, fold: FoldSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    for role, keys in (("training", fold.train_keys), ("test", fold.test_keys)):
        absent = [k for k in keys if k not in features.index]
        if absent:
            raise ValueError(
                f"{fold.protocol} fold {fold.held_out!r}/{fold.trial}: "
                f"{len(absent)} {role} samples have no features, e.g. {absent[:3]}"
            )
        unlabelled = labels.loc[keys].isna()
        if unlabelled.any():
            raise ValueError(
                f"{fold.protocol} fold {fold.held_out!r}/{fold.trial}: "
                f"{role} samples without a label: {unlabelled[unlabelled].index[:3].tolist()}"
            )
    return (
        features.loc[fold.train_keys].to_numpy(float),
        labels.loc[fold.train_keys].to_numpy(int),
        features.loc[fold.test_keys].to_numpy(float),
        labels.loc[fold.test_keys].to_numpy(int),
    )


def stack_predictions(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-fold prediction tables in one ``PREDICTION_COLUMNS`` table (empty when none)."""
    return (
        pd.concat(parts, ignore_index=True)[list(PREDICTION_COLUMNS)]
        if parts
        else empty_predictions()
    )


def lodocv_folds_of(
    lodocv_folds: pd.DataFrame, protocols: list[str], params: Mapping[str, Any]
) -> list[FoldSpec]:
    """The LODOCV folds to score: ``params.n_trials`` trials,
    held-out cohorts in ``params.held_out`` (null = all)."""
    wanted = params.get("held_out")
    if wanted:
        unknown = sorted(set(wanted) - set(lodocv_folds["held_out"]))
        if unknown:
            raise ValueError(
                f"baselines.held_out names cohorts that are not in lodocv_folds: {unknown}"
            )
        lodocv_folds = lodocv_folds[lodocv_folds["held_out"].isin(wanted)]
    return list(iter_protocol_folds(lodocv_folds, protocols, params.get("n_repeats")))


def fit_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The fold-fit settings of ``params:baselines`` (inner CV, threshold, jobs, seeds)."""
    return {
        "inner_cv_splits": params["inner_cv"]["n_splits"],
        "n_jobs": params.get("n_jobs", 1),
        "threshold_method": params["threshold"]["method"],
        "threshold_source": params["threshold"]["source"],
        "seed_offset": params.get("seed_offset", 0),
        "n_features": params.get("n_features"),
        "calibration": params.get("calibration", "none"),
    }


def combine_prediction_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    """All models' and signatures' predictions in one checked table (sorted)."""
    parts = [t for t in tables if len(t)]
    if not parts:
        raise ValueError(
            "no baseline produced predictions: every model is disabled and no signature was scored"
        )
    combined = validate_predictions(pd.concat(parts, ignore_index=True))
    return combined.sort_values(
        ["model", "protocol", "cohort", "trial", SAMPLE_KEY], kind="stable"
    ).reset_index(drop=True)
