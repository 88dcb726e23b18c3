"""One baseline model on every fold of every configured protocol: parallel fold fits, searches.

:func:`fit_model_on_protocols` runs a model family on the LODOCV protocols (the per-cohort
standardized panel) and on ``amu_holdout`` (log constituent ratios of the AMU matrix, SMOTE
inside the training rows). :func:`run_model_folds` fits the folds in ``n_jobs`` processes
(joblib, each fold seeded by its own seed, so results do not depend on the number of
processes or their order) and writes one search-log row per fold (``SEARCH_LOG_COLUMNS``);
:func:`search_on_source_rows` is the shared hyper-parameter search of
``transfer_search: source``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm.auto import tqdm

from icb_kedro.evaluation.protocols import AMU_PROTOCOL, FoldSpec, iter_amu_holdout_folds
from icb_kedro.models.baselines.estimators import ModelSpec, model_spec_from_params
from icb_kedro.models.baselines.fold_fit import (
    FoldFit,
    SearchResult,
    fit_predict_fold,
    params_to_json,
    search_hyperparameters,
)
from icb_kedro.models.baselines.fold_tables import (
    FitSettings,
    amu_log_features,
    fit_settings,
    fold_arrays,
    labelled_matrix,
    lodocv_folds_of,
    stack_predictions,
)
from icb_kedro.models.baselines.parameters import BaselinesConfig
from icb_kedro.schema import prediction_frame

logger = logging.getLogger(__name__)

# With transfer_search: source, these protocols of a held-out cohort share one search on its
# source rows: loco trains on exactly those rows, transfer on them plus the target's 80%.
SHARED_SEARCH_PROTOCOLS: tuple[str, ...] = ("transfer", "loco")
TRANSFER_SEARCH_SCOPES: tuple[str, ...] = ("fold", "source")  # typed in BaselinesConfig
SEARCH_LOG_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "cohort",
    "repeat",
    "trial",
    "seed",
    "n_train",
    "n_test",
    "search_rows",
    "n_inner_splits",
    "inner_auroc",
    "best_params",
    "threshold",
    "threshold_source",
    "platt_intercept",
    "platt_slope",
    "seconds",
)


def _fit_fold_task(
    spec: ModelSpec,
    arrays: tuple,
    seed: int,
    settings: FitSettings,
    smote: bool,
    fixed_params: dict[str, Any] | None,
) -> FoldFit:
    """One fold in a worker process; the fitted estimator stays there (only results travel back)."""
    x_train, y_train, x_test = arrays
    fit = fit_predict_fold(
        spec,
        x_train,
        y_train,
        x_test,
        seed=seed,
        inner_splits=int(settings.inner_cv_splits),
        n_jobs=1,
        threshold_method=settings.threshold_method,
        threshold_source=settings.threshold_source,
        smote=smote,
        n_features=settings.n_features,
        fixed_params=fixed_params,
        calibration=settings.calibration,
    )
    return fit._replace(estimator=None)


def _search_task(
    spec: ModelSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    seed: int,
    settings: FitSettings,
) -> SearchResult:
    return search_hyperparameters(
        spec,
        x_train,
        y_train,
        seed=seed,
        inner_splits=int(settings.inner_cv_splits),
        n_features=settings.n_features,
    )


def _parallel(tasks: list, n_jobs: int, description: str) -> list:
    """Run joblib tasks in ``n_jobs`` processes, in order, with a progress bar."""
    runner = Parallel(n_jobs=int(n_jobs), return_as="generator")
    return list(tqdm(runner(tasks), total=len(tasks), desc=description, unit="fold", leave=False))


def search_on_source_rows(
    spec: ModelSpec, table: pd.DataFrame, loco_folds: list[FoldSpec], settings: FitSettings
) -> dict[str, SearchResult]:
    """Hyper-parameters per held-out cohort, searched on its source rows (= its loco training rows).

    The source rows are training rows of every transfer fold of that cohort (transfer trains
    on source + the target's 80% split), so reusing the result there leaks nothing and
    replaces 10 searches by one.
    """
    if spec.search == "none":
        return {}
    features, labels = labelled_matrix(table)
    arrays = [fold_arrays(features, labels, fold) for fold in loco_folds]
    seeds = [int(fold.seed) + int(settings.seed_offset) for fold in loco_folds]
    tasks = [
        delayed(_search_task)(spec, a[0], a[1], seed, settings) for a, seed in zip(arrays, seeds)
    ]
    results = _parallel(tasks, settings.n_jobs, f"baselines {spec.name} source search")
    return {fold.held_out: result for fold, result in zip(loco_folds, results)}


def run_model_folds(
    spec: ModelSpec,
    table: pd.DataFrame,
    folds: Iterable[FoldSpec],
    settings: FitSettings,
    smote: bool = False,
    shared_search: Mapping[str, SearchResult] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and score ``spec`` on every fold; return (predictions, search log).

    Folds run in ``settings.n_jobs`` processes (joblib); each fold is seeded by its own
    seed, so results do not depend on the number of processes or their order.
    ``shared_search`` (held-out cohort -> result of :func:`search_on_source_rows`) gives the
    hyper-parameters of that cohort's transfer and loco folds instead of a per-fold search.
    """
    shared_search = shared_search or {}
    features, labels = labelled_matrix(table)
    folds = list(folds)
    arrays = [fold_arrays(features, labels, fold) for fold in folds]  # validates every fold first
    seeds = [int(fold.seed) + int(settings.seed_offset) for fold in folds]
    shared = [
        shared_search.get(f.held_out) if f.protocol in SHARED_SEARCH_PROTOCOLS else None
        for f in folds
    ]
    tasks = [
        delayed(_fit_fold_task)(
            spec, a[:3], seed, settings, smote, None if s is None else s.best_params
        )
        for a, seed, s in zip(arrays, seeds, shared)
    ]
    fits = _parallel(tasks, settings.n_jobs, f"baselines {spec.name}")
    predictions, log = [], []
    for fold, (_, _, _, y_test), seed, fit, search in zip(folds, arrays, seeds, fits, shared):
        predictions.append(prediction_frame(spec.name, fold, y_test, fit.y_prob, fit.threshold))
        if search is not None:  # report the shared search, not the skipped one
            fit = fit._replace(inner_auroc=search.inner_auroc, n_inner_splits=search.n_inner_splits)
        log.append(
            {
                "model": spec.name,
                "protocol": fold.protocol,
                "cohort": fold.held_out,
                "repeat": fold.repeat,
                "trial": fold.trial,
                "seed": seed,
                "n_train": len(fold.train_keys),
                "n_test": len(fold.test_keys),
                "search_rows": "fold" if search is None or fold.protocol == "loco" else "source",
                "n_inner_splits": fit.n_inner_splits,
                "inner_auroc": fit.inner_auroc,
                "best_params": params_to_json(fit.best_params),
                "threshold": fit.threshold,
                "threshold_source": fit.threshold_source,
                "platt_intercept": fit.platt[0],
                "platt_slope": fit.platt[1],
                "seconds": fit.seconds,
            }
        )
    return stack_predictions(predictions), pd.DataFrame(log, columns=list(SEARCH_LOG_COLUMNS))


def fit_model_on_protocols(
    model_name: str,
    features: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    config: BaselinesConfig,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One baseline model on every configured protocol: (predictions, search log).

    LODOCV protocols use ``features`` (the per-cohort standardized panel); ``amu_holdout``
    uses log constituent ratios of the AMU matrix with SMOTE inside the training rows
    (``config.amu_holdout.smote``). ``config.transfer_search``: ``fold`` = every fold
    searches on its own training rows; ``source`` = one search per held-out cohort on its
    source rows, shared by its loco fold and its transfer folds (see
    :func:`search_on_source_rows`). A disabled model returns empty tables.
    """
    model_config = config.models.get(model_name)
    if model_config is None:
        raise ValueError(
            f"baselines.models has no entry {model_name!r}; it has {sorted(config.models)}"
        )
    if not model_config.enabled:
        logger.info("baselines: model %s is disabled", model_name)
        return stack_predictions([]), pd.DataFrame(columns=list(SEARCH_LOG_COLUMNS))
    spec = model_spec_from_params(model_name, model_config)
    wanted = [p for p in config.protocols if spec.protocols is None or p in spec.protocols]
    settings = fit_settings(config)
    parts = []
    lodocv = [p for p in wanted if p != AMU_PROTOCOL]
    if lodocv:
        shared = {}
        if config.transfer_search == "source" and "transfer" in lodocv:
            shared = search_on_source_rows(
                spec, features, lodocv_folds_of(lodocv_folds, ["loco"], config), settings
            )
        folds = lodocv_folds_of(lodocv_folds, lodocv, config)
        parts.append(run_model_folds(spec, features, folds, settings, shared_search=shared))
    if AMU_PROTOCOL in wanted:
        amu = config.amu_holdout
        table = amu_log_features(amu_matrix, float(amu.pseudo_count))
        folds = iter_amu_holdout_folds(amu_holdout_folds, amu.n_trials)
        amu_settings = replace(settings, n_features=amu.n_features)  # all 160 genes by default
        parts.append(run_model_folds(spec, table, folds, amu_settings, smote=bool(amu.smote)))
    predictions = stack_predictions([p for p, _ in parts if len(p)])
    log = (
        pd.concat([log for _, log in parts], ignore_index=True)
        if parts
        else pd.DataFrame(columns=list(SEARCH_LOG_COLUMNS))
    )
    return predictions, log


def stack_search_logs(*logs: pd.DataFrame) -> pd.DataFrame:
    """The models' search logs in one table (chosen hyper-parameters and timings per fold)."""
    parts = [log for log in logs if len(log)]
    if not parts:
        return pd.DataFrame(columns=list(SEARCH_LOG_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(SEARCH_LOG_COLUMNS)]
