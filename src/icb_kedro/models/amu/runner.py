"""Run AMU over scored folds: one seeded fit per fold, in parallel worker processes.

The pipeline nodes turn fold tables into :class:`FoldData` (arrays + keys), call
:func:`run_folds`, and get back one predictions frame (``schema.PREDICTION_COLUMNS``) and
the fitted networks as plain dicts. Each fold's numbers depend only on its own data and
seed, so ``n_jobs`` changes the wall time, never the results.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from icb_kedro.evaluation.metrics import auroc, fit_threshold
from icb_kedro.schema import SAMPLE_KEY, empty_predictions, prediction_frame

from .train_config import TrainConfig, lone_fit_threads  # plain data, no Paddle

logger = logging.getLogger(__name__)

MODEL_NAME = "amu"
LEAKY_PROTOCOL = "amu_holdout_leaky"
COPY_SUFFIX = "#copy"  # sample key of a duplicated responder in the paper's leaky protocol
COLLAPSE_SPREAD = 1e-4  # a fold whose training-row probabilities span less than this is flagged


@dataclass(frozen=True)
class FoldData:
    """One fold ready to fit: training rows, test rows and their sample keys."""

    protocol: str
    cohort: str  # the scored cohort ("AMU" for the study setting)
    trial: int
    repeat: int  # the group of trials whose pooled predictions score each patient once
    seed: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_keys: list[str]
    smote: bool = True  # False for the leaky protocol: its duplication *is* the balancing

    @property
    def held_out(self) -> str:  # the FoldSpec name, so schema.prediction_frame reads both
        return self.cohort

    @property
    def fold_id(self) -> str:
        return f"{self.protocol}|{self.cohort}|{self.trial}"


def fold_data(
    protocol: str,
    cohort: str,
    trial: int,
    seed: int,
    features: pd.DataFrame,
    labels: pd.Series,
    train_keys: Sequence[str],
    test_keys: Sequence[str],
    smote: bool = True,
    repeat: int | None = None,
) -> FoldData:
    """Slice a (sample_key-indexed) feature table and label series into one fold
    (``repeat`` defaults to ``trial``: an 80/20 split is its own repeat)."""
    wanted = list(train_keys) + list(test_keys)
    missing = [k for k in wanted if k not in features.index]
    if missing:
        raise ValueError(
            f"{protocol} fold {cohort}/{trial}: {len(missing)} samples have no features, e.g. "
            f"{missing[:5]}"
        )
    y = labels.reindex(wanted)
    if y.isna().any():
        raise ValueError(
            f"{protocol} fold {cohort}/{trial}: unlabelled samples {y[y.isna()].index[:5].tolist()}"
        )
    y = y.astype(int).to_numpy()
    n_train = len(train_keys)
    return FoldData(
        protocol=protocol,
        cohort=cohort,
        trial=int(trial),
        repeat=int(trial if repeat is None else repeat),
        seed=int(seed),
        X_train=features.loc[list(train_keys)].to_numpy(dtype=np.float64),
        y_train=y[:n_train],
        X_test=features.loc[list(test_keys)].to_numpy(dtype=np.float64),
        y_test=y[n_train:],
        test_keys=list(test_keys),
        smote=smote,
    )


def leaky_oversampled_split(
    labels: pd.Series, seed: int, test_size: float = 0.2
) -> tuple[list[str], list[str]]:
    """The paper's protocol (spec 1.6, flaw 3.1), kept only to measure its leakage.

    Every responder is duplicated once *before* splitting (207 -> 280 rows, 134 NR / 146 R,
    as ``logfourupsample.csv``), then the 280 rows are split 80/20 (stratified, ``seed``).
    A copy's key is ``<sample_key>#copy``; a test row whose twin is in training is an
    exact copy of a training row.
    """
    responders = labels.index[labels.astype(int) == 1].tolist()
    keys = labels.index.tolist() + [k + COPY_SUFFIX for k in responders]
    y = labels.astype(int).tolist() + [1] * len(responders)
    train, test = train_test_split(
        keys, test_size=test_size, stratify=y, random_state=int(seed), shuffle=True
    )
    return sorted(train), sorted(test)


def original_key(key: str) -> str:
    """``amu_001#copy`` -> ``amu_001``."""
    return key[: -len(COPY_SUFFIX)] if key.endswith(COPY_SUFFIX) else key


def copies_in_test(train_keys: Sequence[str], test_keys: Sequence[str]) -> int:
    """Test rows whose patient also has a row in training (exact duplicates: leakage)."""
    train_patients = {original_key(k) for k in train_keys}
    return sum(original_key(k) in train_patients for k in test_keys)


def run_fold(
    fold: FoldData,
    features: list[str],
    model_config: dict[str, Any],
    train_config: TrainConfig,
    threshold_method: str = "youden",
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fit on the fold's training rows, score its test rows; threshold fitted on training rows.

    ``train_config``'s seed is replaced by the fold's, and SMOTE is off where the fold says so."""
    from .train import fit_predict  # Paddle loads here, in the worker

    config = replace(train_config, seed=fold.seed, smote=train_config.smote and fold.smote)
    fitted, p_train, p_test = fit_predict(
        fold.X_train,
        fold.y_train,
        fold.X_test,
        model_config=model_config,
        train_config=config,
        features=features,
    )
    threshold = fit_threshold(fold.y_train, p_train, method=threshold_method)
    if np.ptp(p_train) < COLLAPSE_SPREAD:
        # Seen with too high a learning rate: the post-LN encoder's output stops depending
        # on the input and every sample gets the class prior (AUROC exactly 0.5).
        logger.warning(
            "amu %s: P(responder) spans only %.1e over the training rows: the network ignores its "
            "input (collapsed)",
            fold.fold_id,
            np.ptp(p_train),
        )
    predictions = prediction_frame(
        MODEL_NAME, fold, fold.y_test, p_test, threshold, n_train=len(fold.y_train)
    )
    # The training fit (real training rows, no SMOTE rows): a model that cannot fit its
    # training rows says nothing about leakage or transfer (issue 13).
    train_auroc = auroc(fold.y_train, p_train)  # NaN if one class
    logger.info(
        "amu %s: %d train (+%d SMOTE), %d test, %d epochs in %.0f s, final loss %.3f, "
        "training AUROC %.3f",
        fold.fold_id,
        fitted.n_train,
        fitted.n_synthetic,
        len(fold.test_keys),
        config.epochs,
        fitted.fit_seconds,
        fitted.loss_history[-1],
        train_auroc,
    )
    fit_record = {
        "protocol": fold.protocol,
        "cohort": fold.cohort,
        "repeat": fold.repeat,
        "trial": fold.trial,
    }
    return predictions, {
        "fold": fold.fold_id,
        **fit_record,
        "train_auroc": train_auroc,
        **asdict(fitted),
    }


def run_folds(
    folds: Sequence[FoldData],
    features: list[str],
    model_config: dict[str, Any],
    train_config: TrainConfig,
    threshold_method: str = "youden",
    n_jobs: int = 1,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """All folds (largest first, over ``n_jobs`` processes); predictions + weights by fold id.

    ``model_config``: the network settings with ``n_genes`` (``inputs.network_config``);
    ``train_config``: the recipe, each fold fitted with its own seed."""
    if not folds:
        return empty_predictions(), {}
    ids = [f.fold_id for f in folds]
    if len(set(ids)) != len(ids):
        raise ValueError(
            f"run_folds: duplicated fold ids {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    ordered = sorted(folds, key=lambda f: -len(f.y_train))  # long fits first: better packing
    from tqdm.auto import tqdm

    progress = tqdm(
        total=len(ordered), desc=f"AMU {ordered[0].protocol}…", unit="fold", leave=False
    )
    # Fewer folds than workers (loco: one fold per cohort node): the idle workers' threads go
    # to the fits (fused engine only: its numbers do not depend on the thread count).
    train_config = lone_fit_threads(train_config, n_jobs, len(ordered))
    n_jobs = min(int(n_jobs), len(ordered))
    if n_jobs == 1:
        results = []
        for fold in ordered:
            results.append(run_fold(fold, features, model_config, train_config, threshold_method))
            progress.update()
    else:
        from joblib import Parallel, delayed

        # return_as="generator": results arrive in order as folds finish, driving the bar.
        results = []
        for result in Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(run_fold)(f, features, model_config, train_config, threshold_method)
            for f in ordered
        ):
            results.append(result)
            progress.update()
    progress.close()
    predictions = pd.concat([p for p, _ in results], ignore_index=True)
    predictions = predictions.sort_values(
        ["protocol", "cohort", "trial", SAMPLE_KEY], kind="stable"
    ).reset_index(drop=True)
    weights = {w["fold"]: w for _, w in sorted(results, key=lambda r: r[1]["fold"])}
    return predictions, weights
