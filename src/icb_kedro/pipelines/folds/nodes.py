"""Nodes of the folds pipeline: LODOCV folds (repeated stratified K-fold + the paper's 80/20)
and AMU hold-out splits, stored as data.

Folds are made once, here, and every model reads them: no model pipeline re-splits.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from icb_kedro.evaluation.protocols import check_kfold_partitions
from icb_kedro.io.validation import InputDataError
from icb_kedro.schema import (
    COHORT,
    FOLD_COLUMNS,
    LABEL,
    PAPER_TRIAL_OFFSET,
    ROLE_SOURCE,
    ROLE_SOURCE_UNLABELLED,
    ROLE_TARGET_TEST,
    ROLE_TARGET_TRAIN,
    ROLE_TARGET_UNLABELLED,
    SAMPLE_KEY,
    SCHEME_HOLDOUT,
    SCHEME_KFOLD,
)

from .config import AmuHoldoutFolds, LodocvFolds, PaperSplits


def stratified_split(
    keys: np.ndarray, labels: np.ndarray, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/test split of labelled samples (the IC2Bert protocol:
    test = ceil(0.2 n))."""
    train, test = train_test_split(
        keys, test_size=test_size, stratify=labels, random_state=seed, shuffle=True
    )
    return np.sort(train), np.sort(test)


def stratified_kfold_splits(
    keys: np.ndarray, labels: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One round of seeded stratified K-fold: K (train, test) pairs whose tests partition ``keys``.

    A class with fewer than K patients (Padron 2022 has 3 responders) leaves some test folds
    without it; that is harmless here because the cohort's AUROC is computed on the pooled
    out-of-fold predictions of the whole round, never on one fold, so sklearn's warning
    about it is silenced rather than K lowered for that cohort.
    """
    if n_splits < 2:
        raise ValueError(f"folds.lodocv.kfold.n_splits must be >= 2, got {n_splits}")
    if n_splits > len(keys):
        raise ValueError(
            f"folds.lodocv.kfold.n_splits = {n_splits} exceeds the {len(keys)} labelled patients"
        )
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        pairs = list(splitter.split(keys, labels))
    return [(np.sort(keys[train]), np.sort(keys[test])) for train, test in pairs]


def _split_rows(
    held_out: str, train: np.ndarray, test: np.ndarray, fixed: pd.DataFrame, **ids: Any
) -> pd.DataFrame:
    split = pd.concat(
        [
            pd.DataFrame({COHORT: held_out, SAMPLE_KEY: train, "role": ROLE_TARGET_TRAIN}),
            pd.DataFrame({COHORT: held_out, SAMPLE_KEY: test, "role": ROLE_TARGET_TEST}),
            fixed[[COHORT, SAMPLE_KEY, "role"]],
        ],
        ignore_index=True,
    )
    return split.assign(held_out=held_out, **ids)


def make_lodocv_folds(
    harmonized_expression: pd.DataFrame, held_out: str, params: dict[str, Any]
) -> pd.DataFrame:
    """Every split of one held-out cohort: who trains, who is tested, who pretrains.

    Two schemes over h's labelled samples (``schema.SCHEMES``):

    - ``kfold`` (protocols transfer / within / loco): ``kfold.n_repeats`` rounds of seeded
      stratified ``kfold.n_splits``-fold (round r: seed = base_seed + r; trial = r * K + fold),
      so every labelled patient is tested exactly once per repeat and a cohort's AUROC is
      computed on all of its patients, not on the 3-8 of a 20 % split.
    - ``holdout`` (protocol transfer_paper, the IC2Bert paper's): ``paper.n_trials`` stratified
      80/20 splits (trial t: seed = base_seed + t, the original run_ic2bert.sh's 1000 + trial
      shifted by one; trial id = ``PAPER_TRIAL_OFFSET`` + t), each its own repeat.

    In every split h's unlabelled samples are ``target_unlabelled``; every other cohort's
    samples are ``source`` (labelled) or ``source_unlabelled``. The pretraining pool of h is
    ``source`` + ``source_unlabelled``: h never enters it, so one pretraining serves all of
    h's splits.
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
            f"held-out cohort {held_out!r} has {counts.get(1, 0)} responder(s) and "
            f"{counts.get(0, 0)} non-responder(s) labelled under the label rule "
            "(harmonization.label); a held-out cohort needs at least 2 of each. Hold out the other "
            f"cohorts only (ICB_COHORTS=... without {held_out}; it stays a training and "
            "pretraining source), or choose another label rule."
        )
    others = table[table[COHORT] != held_out]
    fixed = pd.concat(
        [
            target[target[LABEL].isna()].assign(role=ROLE_TARGET_UNLABELLED),
            others[others[LABEL].notna()].assign(role=ROLE_SOURCE),
            others[others[LABEL].isna()].assign(role=ROLE_SOURCE_UNLABELLED),
        ]
    )
    keys, labels = labelled[SAMPLE_KEY].to_numpy(), labelled[LABEL].astype(int).to_numpy()
    config = LodocvFolds.of(params, "params:folds.lodocv")
    n_splits = config.kfold.n_splits
    rows = []
    for repeat in range(config.kfold.n_repeats):
        seed = config.base_seed + repeat
        for fold, (train, test) in enumerate(stratified_kfold_splits(keys, labels, n_splits, seed)):
            ids = {
                "scheme": SCHEME_KFOLD,
                "repeat": repeat,
                "trial": repeat * n_splits + fold,
                "seed": seed,
            }
            rows.append(_split_rows(held_out, train, test, fixed, **ids))
    paper = config.paper or PaperSplits(n_trials=0)
    for trial in range(paper.n_trials):
        seed = config.base_seed + trial
        train, test = stratified_split(keys, labels, paper.test_size, seed)
        ids = {
            "scheme": SCHEME_HOLDOUT,
            "repeat": trial,
            "trial": PAPER_TRIAL_OFFSET + trial,
            "seed": seed,
        }
        rows.append(_split_rows(held_out, train, test, fixed, **ids))
    folds = pd.concat(rows, ignore_index=True)[list(FOLD_COLUMNS)]
    return folds.astype({"repeat": "int64", "trial": "int64", "seed": "int64"})


def combine_folds(*partial_folds: pd.DataFrame) -> pd.DataFrame:
    """Concatenate the per-held-out-cohort tables into the one ``lodocv_folds`` dataset."""
    folds = pd.concat(partial_folds, ignore_index=True)
    check_kfold_partitions(folds)
    return folds.sort_values(["held_out", "trial", "role", SAMPLE_KEY], kind="stable").reset_index(
        drop=True
    )


def make_amu_holdout_folds(amu_matrix: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The AMU study protocol: repeated stratified 80/20 splits of the 207 patients.

    Splits are made on patients *before* any oversampling (spec item 1); SMOTE, where
    used, runs inside each training split.
    """
    config = AmuHoldoutFolds.of(params, "params:folds.amu_holdout")
    rows = []
    for trial in range(config.n_trials):
        seed = config.base_seed + trial
        train, test = stratified_split(
            amu_matrix[SAMPLE_KEY].to_numpy(),
            amu_matrix[LABEL].astype(int).to_numpy(),
            config.test_size,
            seed,
        )
        rows.append(
            pd.DataFrame({"trial": trial, "seed": seed, SAMPLE_KEY: train, "role": "train"})
        )
        rows.append(pd.DataFrame({"trial": trial, "seed": seed, SAMPLE_KEY: test, "role": "test"}))
    return pd.concat(rows, ignore_index=True)
