"""The predictions table every summary starts from: validation, grouping keys, cohort seeds.

``predictions`` (``schema.PREDICTION_COLUMNS``, one row per scored sample and repeat) is the
only input of the summaries; every model pipeline produces it, so every model is summarised
identically. :func:`validate_predictions` checks and types it (a ValueError names the
problem and where); ``FOLD_KEYS`` / ``COHORT_KEYS`` are the groupings of the fold and cohort
tables. Determinism: each bootstrap draws from a generator seeded by (``seed``, cohort)
(:func:`cohort_rng`), so a cohort's resamples are the same for every model (common random
numbers, which sharpens comparisons) and do not change when models are added or removed.
Public names are re-exported by :mod:`~icb_kedro.evaluation.summary`.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from icb_kedro.schema import PREDICTION_COLUMNS, PROTOCOLS, SAMPLE_KEY

FOLD_KEYS: tuple[str, ...] = ("model", "protocol", "cohort", "repeat")
COHORT_KEYS: tuple[str, ...] = ("model", "protocol", "cohort")


# ----------------------------------------------------------------------------- validation


def validate_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """A checked copy of a predictions table (ValueError naming the problem and where)."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}; expected {list(PREDICTION_COLUMNS)}")
    table = predictions[list(PREDICTION_COLUMNS)].copy()
    if table.empty:
        raise ValueError("predictions table is empty")
    has_na = table.isna().any()
    if has_na.any():
        raise ValueError(
            f"predictions have missing values in columns {has_na[has_na].index.tolist()}"
        )
    unknown = sorted(set(table["protocol"]) - set(PROTOCOLS))
    if unknown:
        raise ValueError(
            f"predictions have unknown protocols {unknown}; expected some of {PROTOCOLS}"
        )
    labels = table["y_true"].astype(float)
    if not labels.isin((0.0, 1.0)).all():
        bad = table.loc[~labels.isin((0.0, 1.0))].iloc[0]
        raise ValueError(
            f"y_true must be 0/1; got {bad['y_true']!r} for {bad[SAMPLE_KEY]!r} ({bad['model']}, "
            f"{bad['protocol']})"
        )
    prob = table["y_prob"].astype(float)
    outside = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if outside.any():
        bad = table.loc[outside].iloc[0]
        raise ValueError(
            f"y_prob must be a probability in [0, 1]; {int(outside.sum())} rows are not, "
            f"e.g. {bad['y_prob']!r} for {bad[SAMPLE_KEY]!r} ({bad['model']}, {bad['protocol']}, "
            f"repeat {bad['repeat']}, trial {bad['trial']})"
        )
    duplicated = table.duplicated([*FOLD_KEYS, SAMPLE_KEY])
    if duplicated.any():
        bad = table.loc[duplicated].iloc[0]
        raise ValueError(
            f"predictions score {bad[SAMPLE_KEY]!r} twice in one repeat ({bad['model']}, "
            f"{bad['protocol']}, {bad['cohort']}, repeat {bad['repeat']}); {int(duplicated.sum())} "
            "duplicated rows: a repeat's splits must test each patient once"
        )
    split_keys = [*FOLD_KEYS, "trial"]
    per_split = table.groupby(split_keys, sort=False)[["n_train", "threshold"]].nunique()
    varying = per_split[(per_split > 1).any(axis=1)]
    if len(varying):
        key = dict(zip(split_keys, varying.index[0]))
        raise ValueError(
            f"n_train and threshold must be constant within a split; split {key} has several values"
        )
    for column in ("model", "protocol", "cohort", SAMPLE_KEY):
        table[column] = table[column].astype(str)
    return table.astype(
        {
            "repeat": "int64",
            "trial": "int64",
            "y_true": "int8",
            "y_prob": "float64",
            "n_train": "int64",
            "threshold": "float64",
        }
    )


def cohort_rng(seed: int, cohort: str) -> np.random.Generator:
    """Generator for one cohort's resamples: the same for every model and protocol."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), zlib.crc32(str(cohort).encode())])
    )
