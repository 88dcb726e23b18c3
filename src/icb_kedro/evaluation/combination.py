"""Combining per-cohort AUROC differences (fixed effect) and multiple testing (BH).

Cohorts are independent patient samples, so :func:`combine_cohort_differences` pools their
paired differences by inverse variance (the same test as Stouffer's weighted z);
:func:`bh_adjust` turns a family of p-values into Benjamini-Hochberg q-values. Public names
are re-exported by :mod:`~icb_kedro.evaluation.statistics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import false_discovery_control, norm


class CombinedResult(NamedTuple):
    """Fixed-effect (inverse-variance) combination of per-cohort differences."""

    diff: float
    se: float
    z: float
    p: float
    n_cohorts: int


# ----------------------------------------------------------------------------- combining


def combine_cohort_differences(
    diffs: Sequence[float] | np.ndarray, ses: Sequence[float] | np.ndarray
) -> CombinedResult:
    """Fixed-effect inverse-variance combination of independent per-cohort AUROC differences.

    Cohorts are independent patient samples, so their paired differences d_c (SE s_c)
    combine as d = sum(w_c d_c) / sum(w_c) with w_c = 1 / s_c^2 and SE(d) = 1/sqrt(sum w_c).
    Its z = d / SE(d) equals Stouffer's weighted z, sum(z_c / s_c) / sqrt(sum 1 / s_c^2):
    the two named methods are one test, which gives precise (large) cohorts more say than
    Padron's 3 responders. It tests "no difference on average"; opposite effects in
    different cohorts can cancel (the per-cohort rows show them). Cohorts with an undefined
    or zero SE (e.g. identical rankings) carry no variance information and are left out;
    if every cohort has identical rankings the result is diff 0, p 1.
    """
    d = np.asarray(diffs, dtype=float)
    s = np.asarray(ses, dtype=float)
    if d.shape != s.shape:
        raise ValueError(f"diffs and ses must have the same shape, got {d.shape} and {s.shape}")
    usable = np.isfinite(d) & np.isfinite(s) & (s > 0)
    if not usable.any():
        identical = np.isfinite(d) & (s == 0) & (d == 0)
        if (
            identical.any() and identical.sum() == np.isfinite(d).sum()
        ):  # same ranking in every cohort
            return CombinedResult(0.0, 0.0, 0.0, 1.0, int(identical.sum()))
        return CombinedResult(float("nan"), float("nan"), float("nan"), float("nan"), 0)
    weights = 1.0 / s[usable] ** 2
    combined = float(np.sum(weights * d[usable]) / weights.sum())
    se = float(1.0 / np.sqrt(weights.sum()))
    z = combined / se
    return CombinedResult(combined, se, float(z), float(2.0 * norm.sf(abs(z))), int(usable.sum()))


def bh_adjust(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (scipy's ``false_discovery_control``); NaN p-values stay NaN."""
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = false_discovery_control(p[finite], method="bh")
    return q
