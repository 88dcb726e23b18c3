"""From a predictions table to the shared results tables and the report section.

``predictions`` (``schema.PREDICTION_COLUMNS``, one row per scored sample and repeat) is the
only input; every model pipeline produces it, so every model is summarised identically.
The unit of every metric is a *repeat*: the pooled out-of-fold predictions of the K splits
that score each patient of the cohort once (an 80/20 split on its own for the paper's
protocols). Where the functions below say "trial" they mean that unit.

This module is the public import point; the code lives in:

- :mod:`~icb_kedro.evaluation.predictions`: :func:`validate_predictions`, the grouping keys
  and the per-cohort random streams.
- :mod:`~icb_kedro.evaluation.cohort_tables`: :func:`fold_metrics` (the tidy results table,
  one row per (model, protocol, cohort, repeat)), :func:`cohort_summary` (per (model,
  protocol, cohort) mean and sd over repeats of every metric, and a patient-level bootstrap
  95% CI of the mean-over-repeats AUROC) and :func:`overall_summary` (per (model, protocol)
  unweighted mean over cohorts with a CI: patients resampled within cohorts, cohorts fixed).
- :mod:`~icb_kedro.evaluation.comparisons`: :func:`paired_comparisons`, per cohort, AUROC
  difference of two models on the samples both scored in the same trials, DeLong test
  (extended to overlapping trial splits) and paired bootstrap CI; plus a row per pair
  combining cohorts (random effects, DerSimonian-Laird, with tau² and I²) with
  Benjamini-Hochberg q-values.
- :mod:`~icb_kedro.evaluation.markdown_report`: :func:`summary_markdown`, the readable report
  section.

Determinism: each bootstrap draws from a generator seeded by (``seed``, cohort), so a
cohort's resamples are the same for every model (common random numbers, which sharpens
comparisons) and do not change when models are added or removed.
"""

from __future__ import annotations

from icb_kedro.evaluation.cohort_tables import (
    COHORT_SUMMARY_COLUMNS,
    OVERALL_SUMMARY_COLUMNS,
    CohortBootstrap,
    cohort_bootstrap,
    cohort_summary,
    fold_metrics,
    overall_from_bootstrap,
    overall_summary,
)
from icb_kedro.evaluation.comparisons import (
    ALL_COHORTS,
    COMPARISON_COLUMNS,
    combine_differences_random_effects,
    paired_comparisons,
)
from icb_kedro.evaluation.markdown_report import CAVEAT, short_cohort_names, summary_markdown
from icb_kedro.evaluation.predictions import COHORT_KEYS, FOLD_KEYS, validate_predictions

__all__ = [
    "ALL_COHORTS",
    "CAVEAT",
    "COHORT_KEYS",
    "COHORT_SUMMARY_COLUMNS",
    "COMPARISON_COLUMNS",
    "FOLD_KEYS",
    "OVERALL_SUMMARY_COLUMNS",
    "CohortBootstrap",
    "cohort_bootstrap",
    "cohort_summary",
    "combine_differences_random_effects",
    "fold_metrics",
    "overall_from_bootstrap",
    "overall_summary",
    "paired_comparisons",
    "short_cohort_names",
    "summary_markdown",
    "validate_predictions",
]
