"""Nodes of the folds pipeline: LODOCV folds and AMU hold-out splits, stored as data.

Folds are made once, here, and every model reads them: no model pipeline re-splits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from icb_kedro.io.validation import InputDataError
from icb_kedro.schema import (
    COHORT,
    FOLD_COLUMNS,
    LABEL,
    ROLE_SOURCE,
    ROLE_SOURCE_UNLABELLED,
    ROLE_TARGET_TEST,
    ROLE_TARGET_TRAIN,
    ROLE_TARGET_UNLABELLED,
    SAMPLE_KEY,
)


def stratified_split(keys: np.ndarray, labels: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of labelled samples (the IC2Bert protocol: test = ceil(0.2 n))."""
    train, test = train_test_split(keys, test_size=test_size, stratify=labels, random_state=seed, shuffle=True)
    return np.sort(train), np.sort(test)


def make_lodocv_folds(harmonized_expression: pd.DataFrame, held_out: str, params: dict[str, Any]) -> pd.DataFrame:
    """All trials of one held-out cohort: who trains, who is tested, who pretrains.

    For held-out cohort h and trial t (seed = base_seed + t): h's labelled samples are
    split stratified 80/20 into ``target_train``/``target_test``; h's unlabelled samples are
    ``target_unlabelled``; every other cohort's samples are ``source`` (labelled) or
    ``source_unlabelled``. The pretraining pool of h is ``source`` + ``source_unlabelled``:
    h never enters it, so one pretraining serves all of h's trials.
    """
    table = harmonized_expression[[COHORT, SAMPLE_KEY, LABEL]]
    if held_out not in set(table[COHORT]):
        raise ValueError(f"held-out cohort {held_out!r} is not in the harmonized table")
    target = table[table[COHORT] == held_out]
    labelled = target[target[LABEL].notna()]
    counts = labelled[LABEL].astype(int).value_counts()
    if min(counts.get(1, 0), counts.get(0, 0)) < 2:
        # Not scorable as a held-out cohort (no AUROC, no stratified split); it still serves
        # as a source of training rows and pretraining for the other cohorts' folds.
        raise InputDataError(
            f"held-out cohort {held_out!r} has {counts.get(1, 0)} responder(s) and {counts.get(0, 0)} non-responder(s) "
            "labelled under the label rule (harmonization.label); a held-out cohort needs at least 2 of each. Hold "
            f"out the other cohorts only (ICB_COHORTS=... without {held_out}; it stays a training and pretraining "
            "source), or choose another label rule."
        )
    others = table[table[COHORT] != held_out]
    fixed = pd.concat(
        [
            target[target[LABEL].isna()].assign(role=ROLE_TARGET_UNLABELLED),
            others[others[LABEL].notna()].assign(role=ROLE_SOURCE),
            others[others[LABEL].isna()].assign(role=ROLE_SOURCE_UNLABELLED),
        ]
    )
    rows = []
    for trial in range(int(params["n_trials"])):
        seed = int(params["base_seed"]) + trial
        train, test = stratified_split(
            labelled[SAMPLE_KEY].to_numpy(), labelled[LABEL].astype(int).to_numpy(), params["test_size"], seed
        )
        split = pd.concat(
            [
                pd.DataFrame({COHORT: held_out, SAMPLE_KEY: train, "role": ROLE_TARGET_TRAIN}),
                pd.DataFrame({COHORT: held_out, SAMPLE_KEY: test, "role": ROLE_TARGET_TEST}),
                fixed[[COHORT, SAMPLE_KEY, "role"]],
            ],
            ignore_index=True,
        )
        rows.append(split.assign(held_out=held_out, trial=trial, seed=seed))
    folds = pd.concat(rows, ignore_index=True)[list(FOLD_COLUMNS)]
    return folds.astype({"trial": "int64", "seed": "int64"})


def combine_folds(*partial_folds: pd.DataFrame) -> pd.DataFrame:
    """Concatenate the per-held-out-cohort tables into the one ``lodocv_folds`` dataset."""
    folds = pd.concat(partial_folds, ignore_index=True)
    return folds.sort_values(["held_out", "trial", "role", SAMPLE_KEY], kind="stable").reset_index(drop=True)


def make_amu_holdout_folds(amu_matrix: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The AMU study protocol: repeated stratified 80/20 splits of the 207 patients.

    Splits are made on patients *before* any oversampling (spec item 1); SMOTE, where
    used, runs inside each training split.
    """
    rows = []
    for trial in range(int(params["n_trials"])):
        seed = int(params["base_seed"]) + trial
        train, test = stratified_split(
            amu_matrix[SAMPLE_KEY].to_numpy(), amu_matrix[LABEL].astype(int).to_numpy(), params["test_size"], seed
        )
        rows.append(pd.DataFrame({"trial": trial, "seed": seed, SAMPLE_KEY: train, "role": "train"}))
        rows.append(pd.DataFrame({"trial": trial, "seed": seed, SAMPLE_KEY: test, "role": "test"}))
    return pd.concat(rows, ignore_index=True)
