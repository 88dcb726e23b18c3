"""Tables in and out of the baselines' folds: feature matrices, fold arrays, prediction tables.

Every model and every signature is scored on the same test rows of the same folds
(``iter_protocol_folds`` / ``iter_amu_holdout_folds``): this module turns the wide input
tables into (features, labels) and a fold into its training/test arrays (refusing rows
without features or labels), selects the LODOCV folds a run scores, reads the fit settings
from ``params:baselines`` (:class:`FitSettings`), and stacks the per-fold
``schema.PREDICTION_COLUMNS`` tables into the one checked, sorted table all summaries
derive from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import SELECTED_CELLS, FoldSpec, iter_protocol_folds
from icb_kedro.evaluation.summary import validate_predictions
from icb_kedro.models.amu.features import log_constituent_ratios  # numpy only, no Paddle
from icb_kedro.models.baselines.parameters import BaselinesConfig
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
    lodocv_folds: pd.DataFrame, protocols: list[str], config: BaselinesConfig
) -> list[FoldSpec]:
    """The LODOCV folds to score: the first ``config.n_repeats`` repeats,
    held-out cohorts in ``config.held_out`` (null = all).

    A table that ``folds.cells`` reduced (``protocols.select_cells``) may hold fewer cohorts
    than ``held_out`` names: those two selections intersect, and only an empty intersection
    is an error. On a whole table a name it lacks is a typo and an error.
    """
    wanted = config.held_out
    if wanted:
        present = set(lodocv_folds["held_out"])
        unknown = sorted(set(wanted) - present)
        if SELECTED_CELLS in lodocv_folds.attrs:
            unknown = [] if present & set(wanted) else unknown
        if unknown:
            raise ValueError(
                f"baselines.held_out names cohorts that are not in lodocv_folds: {unknown}"
                f" (it holds {sorted(present)})"
            )
        lodocv_folds = lodocv_folds[lodocv_folds["held_out"].isin(list(wanted))]
    return list(iter_protocol_folds(lodocv_folds, protocols, config.n_repeats))


@dataclass(frozen=True)
class FitSettings:
    """The fold-fit settings of ``params:baselines`` (inner CV, threshold, jobs, seeds)."""

    inner_cv_splits: int
    n_jobs: int
    threshold_method: str
    threshold_source: str
    seed_offset: int
    n_features: int | None  # ANOVA-F genes kept per fold (None = every gene)
    calibration: str


def fit_settings(config: BaselinesConfig) -> FitSettings:
    """The fold-fit settings of ``params:baselines``."""
    return FitSettings(
        inner_cv_splits=config.inner_cv.n_splits,
        n_jobs=config.n_jobs,
        threshold_method=config.threshold.method,
        threshold_source=config.threshold.source,
        seed_offset=config.seed_offset,
        n_features=config.n_features,
        calibration=config.calibration,
    )


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
