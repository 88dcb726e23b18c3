"""Patient-level uncertainty of AUROC: bootstrap CIs, DeLong tests, cohort combination, BH.

Test sets here are small (a 20% split of Riaz holds 1 responder and 2 non-responders),
so every interval and test is computed at the level of patients, never of folds. This
module is the public import point of that layer and re-exports its names from where they
live: :mod:`~icb_kedro.evaluation.bootstrap` (stratified, patient-clustered bootstrap of the
mean-over-trials AUROC, paired differences and pooled cohort CIs),
:mod:`~icb_kedro.evaluation.delong` (fast DeLong covariance and tests, extended to
overlapping trial splits) and :mod:`~icb_kedro.evaluation.combination` (fixed-effect
combination of per-cohort differences and Benjamini-Hochberg q-values).
"""

from __future__ import annotations

from icb_kedro.evaluation.bootstrap import (
    RESAMPLE_SCHEMES,
    BootstrapCI,
    PairedBootstrapResult,
    SeedLike,
    bootstrap_auroc_ci,
    bootstrap_auroc_replicates,
    bootstrap_mean_auroc_ci,
    paired_bootstrap_auroc_difference,
    percentile_ci,
    pooled_mean_ci,
)
from icb_kedro.evaluation.combination import (
    CombinedResult,
    bh_adjust,
    combine_cohort_differences,
)
from icb_kedro.evaluation.delong import (
    DeLongResult,
    delong_covariance,
    delong_test,
    delong_test_over_trials,
)

__all__ = [
    "RESAMPLE_SCHEMES",
    "BootstrapCI",
    "CombinedResult",
    "DeLongResult",
    "PairedBootstrapResult",
    "SeedLike",
    "bh_adjust",
    "bootstrap_auroc_ci",
    "bootstrap_auroc_replicates",
    "bootstrap_mean_auroc_ci",
    "combine_cohort_differences",
    "delong_covariance",
    "delong_test",
    "delong_test_over_trials",
    "paired_bootstrap_auroc_difference",
    "percentile_ci",
    "pooled_mean_ci",
]
