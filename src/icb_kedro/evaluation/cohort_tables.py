"""Fold, per-cohort and overall summary tables of a predictions table.

The unit of every metric is a *repeat*: the pooled out-of-fold predictions of the K splits
that score each patient of the cohort once (an 80/20 split on its own for the paper's
protocols). Where the functions below say "trial" they mean that unit.

- :func:`fold_metrics`: the tidy results table, one row per (model, protocol, cohort, repeat).
- :func:`cohort_summary`: per (model, protocol, cohort) mean and sd over repeats of every
  metric, and a patient-level bootstrap 95% CI of the mean-over-repeats AUROC.
- :func:`overall_summary`: per (model, protocol) unweighted mean over cohorts with a CI
  (patients resampled within cohorts, cohorts fixed).
- :class:`CohortBootstrap` / :func:`cohort_bootstrap`: the per-cohort bootstrap drawn once and
  shared by the cohort table, the overall summary and the meta-analysis.

Public names are re-exported by :mod:`~icb_kedro.evaluation.summary`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from icb_kedro.evaluation.bootstrap import (
    bootstrap_auroc_replicates,
    percentile_ci,
    pooled_mean_ci,
)
from icb_kedro.evaluation.metrics import binary_metrics
from icb_kedro.evaluation.predictions import (
    COHORT_KEYS,
    FOLD_KEYS,
    cohort_rng,
    validate_predictions,
)
from icb_kedro.schema import FOLD_METRIC_COLUMNS, METRICS, SAMPLE_KEY

COHORT_SUMMARY_COLUMNS: tuple[str, ...] = (
    *COHORT_KEYS,
    "n_repeats",
    "n_patients",
    *(f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "sd")),
    "ci_low",
    "ci_high",
)
OVERALL_SUMMARY_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "n_cohorts",
    *(f"{metric}_mean" for metric in METRICS),
    "auroc_cohort_sd",
    "ci_low",
    "ci_high",
)


# ----------------------------------------------------------------------------- tables


def fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """The tidy results table: one row per (model, protocol, cohort, repeat),
    ``schema.FOLD_METRIC_COLUMNS``.

    Metrics of the repeat's pooled predictions; threshold metrics judge each row by its own
    split's threshold; ``n_train`` is the mean over the repeat's splits (rounded).
    """
    table = validate_predictions(predictions)
    y_true = table["y_true"].to_numpy()
    y_prob = table["y_prob"].to_numpy()
    threshold = table["threshold"].to_numpy()
    n_train = (
        table.groupby([*FOLD_KEYS, "trial"], sort=False)["n_train"]
        .first()
        .groupby(list(FOLD_KEYS))
        .mean()
    )
    rows = []
    for key, index in table.groupby(list(FOLD_KEYS), sort=False).indices.items():
        rows.append(
            {
                **dict(zip(FOLD_KEYS, key)),
                "n_train": int(round(float(n_train.loc[key]))),
                "n_test": len(index),
                "n_test_pos": int(y_true[index].sum()),
                **binary_metrics(y_true[index], y_prob[index], threshold[index]),
            }
        )
    result = pd.DataFrame(rows, columns=list(FOLD_METRIC_COLUMNS))
    result = result.astype(
        {"repeat": "int64", "n_train": "int64", "n_test": "int64", "n_test_pos": "int64"}
    )
    return result.sort_values(list(FOLD_KEYS), kind="stable").reset_index(drop=True)


def _cohort_replicates(
    table: pd.DataFrame, n_boot: int, seed: int, resample: str
) -> dict[tuple, np.ndarray]:
    """(model, protocol, cohort) -> bootstrap replicates (n_boot,) of the mean-over-repeats
    AUROC."""
    y_true = table["y_true"].to_numpy()
    y_prob = table["y_prob"].to_numpy()
    trials = table["repeat"].to_numpy()
    keys = table[SAMPLE_KEY].to_numpy()
    replicates = {}
    for key, index in table.groupby(list(COHORT_KEYS), sort=False).indices.items():
        replicates[key] = bootstrap_auroc_replicates(
            y_true[index],
            y_prob[index],
            trials[index],
            keys[index],
            n_boot,
            cohort_rng(seed, key[2]),
            resample,
        )
    return replicates


def _cohort_table(
    table: pd.DataFrame, replicates: dict[tuple, np.ndarray], level: float
) -> pd.DataFrame:
    folds = fold_metrics(table)
    grouped = folds.groupby(list(COHORT_KEYS), sort=True)
    stats = grouped[list(METRICS)].agg(
        ["mean", "std"]
    )  # std: ddof=1 over repeats, NaN for one repeat
    stats.columns = [
        f"{metric}_{'sd' if stat == 'std' else stat}" for metric, stat in stats.columns
    ]
    result = stats.reset_index()
    result.insert(3, "n_repeats", grouped.size().to_numpy())
    patients = table.groupby(list(COHORT_KEYS), sort=True)[SAMPLE_KEY].nunique()
    result.insert(
        4,
        "n_patients",
        patients.reindex(pd.MultiIndex.from_frame(result[list(COHORT_KEYS)])).to_numpy(),
    )
    intervals = [
        percentile_ci(replicates[tuple(key)], level)
        for key in result[list(COHORT_KEYS)].itertuples(index=False)
    ]
    result["ci_low"] = [low for low, _ in intervals]
    result["ci_high"] = [high for _, high in intervals]
    return result[list(COHORT_SUMMARY_COLUMNS)].astype(
        {"n_repeats": "int64", "n_patients": "int64"}
    )


@dataclass(frozen=True)
class CohortBootstrap:
    """The patient-level bootstrap of every (model, protocol, cohort), drawn once and shared
    by the per-cohort table, the overall summary and the meta-analysis."""

    table: pd.DataFrame  # the validated predictions
    replicates: dict[tuple, np.ndarray]  # (model, protocol, cohort) -> (n_boot,) replicates
    cohorts: pd.DataFrame  # the per-cohort summary (``cohort_summary``)
    level: float


def cohort_bootstrap(
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> CohortBootstrap:
    table = validate_predictions(predictions)
    replicates = _cohort_replicates(table, n_boot, seed, resample)
    return CohortBootstrap(table, replicates, _cohort_table(table, replicates, level), level)


def cohort_summary(
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> pd.DataFrame:
    """Per (model, protocol, cohort): ``n_repeats``, ``n_patients``, ``<metric>_mean``/``_sd`` over
    repeats, ``ci_low``/``ci_high``.

    The CI is the patient-level stratified bootstrap percentile interval of the AUROC
    averaged over trials (``resample``: see :mod:`icb_kedro.evaluation.statistics`).
    """
    return cohort_bootstrap(predictions, n_boot, seed, level, resample).cohorts


def overall_summary(
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> pd.DataFrame:
    """Per (model, protocol): unweighted mean over cohorts of the per-cohort means, with a CI.

    ``auroc_mean`` weights every cohort equally (a cohort is one setting, however many
    patients it has); ``ci_low``/``ci_high`` resample patients within each cohort with the
    cohorts fixed. Cohorts whose AUROC is undefined are left out (``n_cohorts`` counts the rest).
    """
    return overall_from_bootstrap(cohort_bootstrap(predictions, n_boot, seed, level, resample))


def overall_from_bootstrap(bootstrap: CohortBootstrap) -> pd.DataFrame:
    """``overall_summary`` of an already drawn bootstrap."""
    rows = []
    for (model, protocol), group in bootstrap.cohorts.groupby(["model", "protocol"], sort=True):
        defined = group[group["auroc_mean"].notna()]
        row = {"model": model, "protocol": protocol, "n_cohorts": len(defined)}
        row.update({f"{metric}_mean": defined[f"{metric}_mean"].mean() for metric in METRICS})
        row["auroc_cohort_sd"] = defined["auroc_mean"].std()
        stacked = [bootstrap.replicates[(model, protocol, cohort)] for cohort in defined["cohort"]]
        row["ci_low"], row["ci_high"] = (
            pooled_mean_ci(np.stack(stacked), bootstrap.level) if stacked else (np.nan, np.nan)
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(OVERALL_SUMMARY_COLUMNS)).astype({"n_cohorts": "int64"})
