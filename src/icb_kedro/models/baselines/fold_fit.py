"""One leak-free fold fit of a classical baseline: inner-CV search, refit, threshold.

One fold = :func:`fit_predict_fold`: it receives the TRAINING rows and the test features
only, so nothing fitted (scaler, SMOTE, hyper-parameter search, threshold) can see a test
row. Inside it:

1. The pipeline of :func:`icb_kedro.models.baselines.estimators.make_pipeline`
   (``StandardScaler -> [SelectKBest] -> [SMOTE] -> classifier``), fitted on training rows.
2. Hyper-parameters by inner cross-validation on the training rows: ``GridSearchCV``
   (small grids) or seeded ``RandomizedSearchCV`` (the AMU RF/AdaBoost grids), with a
   seeded ``StratifiedKFold`` and AUROC as the criterion (:func:`search_hyperparameters`
   runs this step alone).
3. Refit on all training rows with the chosen hyper-parameters.
4. SVM probabilities: Platt scaling by ``CalibratedClassifierCV(ensemble=False)`` on the
   training rows (scikit-learn 1.9 deprecates ``SVC(probability=True)`` for it).
5. The decision threshold is fitted on training rows (``evaluation.metrics.fit_threshold``)
   from out-of-fold probabilities of the chosen configuration (``threshold_source="oof"``,
   default), because in-sample probabilities of flexible models (RF, boosting) separate
   the training rows almost perfectly and make any training-set threshold meaningless.

BLAS runs single-threaded inside a fit (``threadpool_limits(1)``): the matrices are tiny,
so multi-threaded BLAS only adds synchronisation (measured 7x slower MLP fits on the
2-core machine); parallelism comes from fitting folds in separate processes instead.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import (
    GridSearchCV,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_val_predict,
)
from threadpoolctl import threadpool_limits

from icb_kedro.evaluation.calibration import fit_platt
from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.models.baselines.estimators import CLASSIFIER_STEP, ModelSpec, make_pipeline
from icb_kedro.models.portable import PlattScaled, platt_scale

logger = logging.getLogger(__name__)


THRESHOLD_SOURCES: tuple[str, ...] = ("oof", "in_sample")
CALIBRATIONS: tuple[str, ...] = ("none", "platt")


class FoldFit(NamedTuple):
    """What one fold produced: test probabilities, the training threshold and how it got there."""

    y_prob: np.ndarray  # P(responder) of the test rows
    threshold: float  # fitted on training rows
    best_params: dict[str, Any]  # chosen by inner CV ({} when there was no search)
    inner_auroc: float  # mean inner-CV AUROC of the chosen configuration (NaN without search)
    n_inner_splits: int  # 0 when there was no search
    estimator: Any  # the pipeline refitted on all training rows
    seconds: float
    threshold_source: str = "oof"  # what the threshold was fitted on (oof falls back to in_sample)
    platt: tuple[float, float] = (0.0, 1.0)  # post-hoc (intercept, slope) applied; (0, 1) = none


def _prefixed(params: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{CLASSIFIER_STEP}__{key}": value for key, value in params.items()}


def _unprefixed(params: Mapping[str, Any]) -> dict[str, Any]:
    return {key.removeprefix(f"{CLASSIFIER_STEP}__"): value for key, value in params.items()}


def inner_cv_splits(y: np.ndarray, n_splits: int) -> int:
    """Folds of the inner CV: ``n_splits`` capped by the smaller class (0 if it has < 2 rows)."""
    smaller = int(min(np.sum(y == 1), np.sum(y == 0)))
    return min(int(n_splits), smaller) if smaller >= 2 else 0


def _search(spec: ModelSpec, pipeline: Any, cv: StratifiedKFold, seed: int, n_jobs: int) -> Any:
    grid = _prefixed(spec.grid)
    common = {
        "cv": cv,
        "scoring": "roc_auc",
        "n_jobs": n_jobs,
        "refit": False,
        "error_score": "raise",
    }
    if spec.search == "grid":
        return GridSearchCV(pipeline, grid, **common)
    n_candidates = int(np.prod([len(v) for v in grid.values()]))
    return RandomizedSearchCV(
        pipeline, grid, n_iter=min(spec.n_iter, n_candidates), random_state=seed, **common
    )


def _final_estimator(spec: ModelSpec, pipeline: Any, calibration_splits: int, seed: int) -> Any:
    """The estimator refitted on all training rows: SVMs get Platt-scaled probabilities."""
    if spec.family != "svm":
        return pipeline
    if calibration_splits < 2:
        raise ValueError(
            f"model {spec.name!r}: Platt scaling needs >= 2 training rows of each class"
        )
    # Platt scaling on cross-validated decision values of the training rows, then one SVM
    # refitted on all of them (ensemble=False = libsvm's probability=True procedure).
    cv = StratifiedKFold(n_splits=calibration_splits, shuffle=True, random_state=seed)
    return CalibratedClassifierCV(pipeline, method="sigmoid", cv=cv, ensemble=False)


def _smallest_oof_minority(minority: int, n_splits: int) -> int:
    """Rows of the smaller class in the smallest training part of an n-split stratified CV."""
    return minority - -(-minority // n_splits) if n_splits else 0


class SearchResult(NamedTuple):
    """Hyper-parameters chosen by inner CV on training rows."""

    best_params: dict[str, Any]  # classifier parameters ({} when there was no search)
    inner_auroc: float  # mean inner-CV AUROC of the chosen configuration (NaN without search)
    n_inner_splits: int  # 0 when a class has fewer than 2 training rows


@contextmanager
def _quiet_single_threaded() -> Iterator[None]:
    """Single-threaded BLAS (see module docstring) and no expected, non-actionable warnings:
    MLP/logistic convergence on tiny folds, and f_classif's "constant feature" and
    divide-by-zero warnings for genes constant in (a class of) a small fold (F = inf/NaN;
    SelectKBest ranks NaN last)."""
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        warnings.filterwarnings(
            "ignore", message="divide by zero encountered", category=RuntimeWarning
        )
        warnings.filterwarnings(
            "ignore", message="invalid value encountered", category=RuntimeWarning
        )
        warnings.filterwarnings("ignore", message="Features .* are constant", category=UserWarning)
        yield


def _checked_training_rows(
    spec: ModelSpec, x_train: np.ndarray, y_train: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    x_train = np.asarray(x_train, dtype=float)
    y_train = np.asarray(y_train).astype(int)
    if x_train.ndim != 2:
        raise ValueError(f"model {spec.name!r}: x_train must be 2-D, got shape {x_train.shape}")
    if len(x_train) != len(y_train):
        raise ValueError(
            f"model {spec.name!r}: {len(x_train)} training rows but {len(y_train)} labels"
        )
    if set(np.unique(y_train)) != {0, 1}:
        raise ValueError(
            f"model {spec.name!r}: training labels must hold both classes 0 and 1, got "
            f"{np.unique(y_train).tolist()}"
        )
    if np.isinf(x_train).any():
        raise ValueError(f"model {spec.name!r}: x_train has infinite values")
    return x_train, y_train


def _training_pipeline(
    spec: ModelSpec,
    y_train: np.ndarray,
    n_genes: int,
    *,
    seed: int,
    inner_splits: int,
    smote: bool,
    n_features: int | None,
    impute: bool = False,
) -> tuple[Any, StratifiedKFold | None, int]:
    """The unfitted pipeline and the seeded inner CV for these training rows (and the minority
    count)."""
    n_splits = inner_cv_splits(y_train, inner_splits)
    # SMOTE's k neighbours must exist among the minority rows of the smallest fit: an inner
    # split of an out-of-fold split (the SVM's Platt scaling nests one more CV level).
    minority = int(min(np.sum(y_train == 1), np.sum(y_train == 0)))
    smallest_fit = _smallest_oof_minority(minority, n_splits) if n_splits else minority
    if spec.family == "svm" and n_splits:
        smallest_fit = _smallest_oof_minority(smallest_fit, n_splits)
    if smote and smallest_fit < 2:
        raise ValueError(
            f"model {spec.name!r}: SMOTE needs >= 2 rows of the smaller class in every (inner) "
            f"training split; {minority} in the training rows leave {smallest_fit} after "
            f"{n_splits}-fold inner CV"
        )
    if n_features is not None and int(n_features) >= n_genes:
        n_features = None  # asking for every gene (or more) = no selection
    pipeline = make_pipeline(
        spec,
        seed,
        smote=smote,
        smote_k_neighbors=max(1, min(5, smallest_fit - 1)),
        n_features=n_features,
        impute=impute,
    )
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed) if n_splits else None
    return pipeline, cv, minority


def _run_search(
    spec: ModelSpec,
    pipeline: Any,
    cv: StratifiedKFold | None,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    n_jobs: int,
) -> SearchResult:
    if spec.search == "none":
        return SearchResult({}, float("nan"), cv.get_n_splits() if cv is not None else 0)
    if cv is None:
        logger.warning(
            "%s: a class has < 2 training rows; no inner CV, first grid candidates used", spec.name
        )
        return SearchResult({k: v[0] for k, v in spec.grid.items()}, float("nan"), 0)
    search = _search(spec, pipeline, cv, seed, n_jobs).fit(x, y)
    return SearchResult(
        _unprefixed(search.best_params_), float(search.best_score_), cv.get_n_splits()
    )


def search_hyperparameters(
    spec: ModelSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    seed: int,
    inner_splits: int = 3,
    n_jobs: int = 1,
    smote: bool = False,
    n_features: int | None = None,
) -> SearchResult:
    """Only the inner-CV search of :func:`fit_predict_fold` (same pipeline, same seeded folds).

    Lets a pipeline choose hyper-parameters once on rows that are training rows of several
    folds (e.g. the source cohorts, a subset of every transfer fold's training rows) and pass
    them to each fold as ``fixed_params``.
    """
    x_train, y_train = _checked_training_rows(spec, x_train, y_train)
    pipeline, cv, _ = _training_pipeline(
        spec,
        y_train,
        x_train.shape[1],
        seed=seed,
        inner_splits=inner_splits,
        smote=smote,
        n_features=n_features,
        impute=bool(np.isnan(x_train).any()),
    )
    with _quiet_single_threaded():
        return _run_search(spec, pipeline, cv, x_train, y_train, seed, n_jobs)


def fit_predict_fold(
    spec: ModelSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    *,
    seed: int,
    inner_splits: int = 3,
    n_jobs: int = 1,
    threshold_method: str = "youden",
    threshold_source: str = "oof",
    smote: bool = False,
    n_features: int | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    calibration: str = "none",
) -> FoldFit:
    """Fit ``spec`` on the training rows (search, refit, threshold) and score ``x_test``.

    Only ``x_train``/``y_train`` reach any ``fit``; ``x_test`` is used once, by
    ``predict_proba`` of the refitted pipeline. ``fixed_params`` (classifier parameters,
    e.g. from :func:`search_hyperparameters` on a subset of these training rows) replace
    the search. With fewer than 2 rows of a class in the training rows there is no inner
    CV: the first candidate of every grid entry is used and the threshold comes from
    in-sample probabilities (logged as a warning).

    ``calibration="platt"``: post-hoc Platt scaling fitted on the training rows' out-of-fold
    probabilities (``evaluation.calibration.fit_platt``), applied to the test probabilities,
    to the training probabilities the threshold is fitted on, and to the returned estimator
    (``models.portable.PlattScaled``); none where there are no out-of-fold probabilities.
    """
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    if threshold_source not in THRESHOLD_SOURCES:
        raise ValueError(
            f"threshold_source must be one of {THRESHOLD_SOURCES}, got {threshold_source!r}"
        )
    x_train, y_train = _checked_training_rows(spec, x_train, y_train)
    x_test = np.asarray(x_test, dtype=float)
    if x_test.ndim != 2 or x_test.shape[1] != x_train.shape[1]:
        raise ValueError(
            f"model {spec.name!r}: x_train {x_train.shape} and x_test {x_test.shape} must be 2-D "
            "with the same columns"
        )
    if np.isinf(x_test).any():
        raise ValueError(f"model {spec.name!r}: x_test has infinite values")

    started = time.perf_counter()
    pipeline, cv, minority = _training_pipeline(
        spec,
        y_train,
        x_train.shape[1],
        seed=seed,
        inner_splits=inner_splits,
        smote=smote,
        n_features=n_features,
        impute=bool(np.isnan(x_train).any() or np.isnan(x_test).any()),
    )
    n_splits = cv.get_n_splits() if cv is not None else 0
    with _quiet_single_threaded():
        if fixed_params is None:
            search = _run_search(spec, pipeline, cv, x_train, y_train, seed, n_jobs)
        else:
            search = SearchResult(dict(fixed_params), float("nan"), n_splits)
        # Out-of-fold probabilities need every nested fit to be possible: the SVM's Platt
        # scaling runs its own CV inside each out-of-fold training part.
        oof_minority = _smallest_oof_minority(minority, n_splits)
        nested_ok = spec.family != "svm" or oof_minority >= 2
        calibration_splits = min(n_splits, oof_minority) if n_splits and nested_ok else n_splits
        final = _final_estimator(
            spec,
            clone(pipeline).set_params(**_prefixed(search.best_params)),
            calibration_splits,
            seed,
        )
        has_oof = cv is not None and nested_ok
        used_source = "oof" if threshold_source == "oof" and has_oof else "in_sample"
        if used_source == "oof" or (calibration == "platt" and has_oof):
            p_oof = cross_val_predict(
                clone(final), x_train, y_train, cv=cv, method="predict_proba", n_jobs=n_jobs
            )[:, 1]
        if used_source == "oof":
            p_train = p_oof
        final.fit(x_train, y_train)
        if used_source == "in_sample":
            if threshold_source == "oof":
                logger.warning(
                    "%s: too few training rows per class for out-of-fold probabilities; "
                    "in-sample threshold",
                    spec.name,
                )
            p_train = final.predict_proba(x_train)[:, 1]
        y_prob = final.predict_proba(x_test)[:, 1]
    platt = (0.0, 1.0)
    if calibration == "platt":
        if has_oof:
            platt = fit_platt(y_train, p_oof)
        else:
            logger.warning(
                "%s: too few training rows per class for out-of-fold probabilities; not "
                "recalibrated",
                spec.name,
            )
        p_train, y_prob = platt_scale(p_train, *platt), platt_scale(y_prob, *platt)
        final = PlattScaled(final, *platt)
    threshold = fit_threshold(y_train, np.clip(p_train, 0.0, 1.0), threshold_method)
    return FoldFit(
        y_prob=np.clip(np.asarray(y_prob, dtype=float), 0.0, 1.0),
        threshold=float(threshold),
        best_params=search.best_params,
        inner_auroc=search.inner_auroc,
        n_inner_splits=search.n_inner_splits,
        estimator=final,
        seconds=time.perf_counter() - started,
        threshold_source=used_source,
        platt=platt,
    )


def params_to_json(params: Mapping[str, Any]) -> str:
    """Chosen hyper-parameters as a stable JSON string (tuples as lists, numpy scalars as
    numbers)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        if isinstance(value, tuple):
            return list(value)
        return value

    return json.dumps({k: plain(v) for k, v in sorted(params.items())}, sort_keys=True)
