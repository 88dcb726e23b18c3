"""Random-effects meta-analysis of AUROC across cohorts (DerSimonian-Laird).

The unweighted mean over cohorts (``summary.overall_summary``) treats 16 and 195 patients
alike and says nothing about heterogeneity. The field's reference for pooling response
predictors across ICB cohorts (PredictIO, bhklab) uses a random-effects meta-analysis per
predictor: each cohort's AUROC weighted by 1 / (its variance + tau^2), with tau^2 the
between-cohort variance. ``statsmodels.stats.meta_analysis.combine_effects`` does the
arithmetic (checked against metafor's DerSimonian-Laird result on the BCG vaccine trials in
the tests); this module supplies the per-cohort AUROC and its variance:

* effect: the cohort's AUROC, mean over repeats (as in ``summary.cohort_summary``);
* variance: of the same patient-level stratified bootstrap that gives the cohort's CI
  (``summary.cohort_bootstrap``, shared when passed in), so trials, repeated patients and small test
  splits are accounted for the same way everywhere;
* a floor where the bootstrap has no spread (a perfect 1.0 or 0.0 on a tiny test split: every
  replicate equal, variance 0, which would give that cohort infinite weight): the
  Hanley-McNeil variance at the AUROC moved by half a pair towards 0.5,
  A* = (A n1 n0 + 0.5) / (n1 n0 + 1) - a continuity correction, stated in the output.

A cohort whose AUROC is undefined (its test rows hold one class) is not estimable: it is
listed by name in ``not_estimable``, never silently dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

META_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "k",
    "pooled_auroc",
    "se",
    "ci_low",
    "ci_high",
    "tau2",
    "i2",
    "q",
    "p_heterogeneity",
    "method",
    "n_floored",
    "not_estimable",
)


def random_effects(effects, variances, method: str = "dl", level: float = 0.95) -> dict[str, float]:
    """Pooled effect of ``effects`` with within-study ``variances`` (random effects).

    ``method``: ``dl`` (DerSimonian-Laird) or ``pm`` (Paule-Mandel, statsmodels' "iterated").
    Returns pooled, se, ci_low, ci_high, tau2, i2, q, p_heterogeneity, k.
    """
    from scipy.stats import chi2, norm
    from statsmodels.stats.meta_analysis import combine_effects

    effects, variances = np.asarray(effects, float), np.asarray(variances, float)
    if effects.shape != variances.shape or effects.ndim != 1:
        raise ValueError(
            f"effects and variances must be 1-D of the same length, got {effects.shape} and "
            f"{variances.shape}"
        )
    if not (np.isfinite(effects).all() and np.isfinite(variances).all() and (variances > 0).all()):
        raise ValueError("effects must be finite and variances finite and > 0")
    k = len(effects)
    if k == 0:
        return {
            "pooled": np.nan,
            "se": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "tau2": np.nan,
            "i2": np.nan,
            "q": np.nan,
            "p_heterogeneity": np.nan,
            "k": 0,
        }
    if k == 1:  # nothing to pool: the study itself
        se = float(np.sqrt(variances[0]))
        z = norm.ppf(0.5 + level / 2)
        return {
            "pooled": float(effects[0]),
            "se": se,
            "ci_low": effects[0] - z * se,
            "ci_high": effects[0] + z * se,
            "tau2": 0.0,
            "i2": np.nan,
            "q": 0.0,
            "p_heterogeneity": np.nan,
            "k": 1,
        }
    methods = {"dl": "dl", "pm": "iterated"}
    if method not in methods:
        raise ValueError(f"method must be one of {sorted(methods)}, got {method!r}")
    with np.errstate(invalid="ignore"):  # its own random-effects SE of a negative tau^2: not used
        result = combine_effects(effects, variances, method_re=methods[method], alpha=1 - level)
    # statsmodels leaves the DerSimonian-Laird moment estimate negative when Q < df; tau^2
    # is a variance, truncated at 0 (as in metafor and the original method): then the
    # random-effects pool is the fixed-effect one.
    tau2 = max(float(result.tau2), 0.0)
    weights = 1.0 / (variances + tau2)
    pooled = float(np.sum(weights * effects) / np.sum(weights))
    se = float(np.sqrt(1.0 / np.sum(weights)))
    z = norm.ppf(0.5 + level / 2)
    q = float(result.q)
    return {
        "pooled": pooled,
        "se": se,
        "ci_low": pooled - z * se,
        "ci_high": pooled + z * se,
        "tau2": tau2,
        "i2": max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
        "q": q,
        "p_heterogeneity": float(chi2.sf(q, k - 1)),
        "k": k,
    }


def hanley_mcneil_variance(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982) variance of an AUROC, at the AUROC moved half a pair towards
    0.5 (so a perfect 1.0 or 0.0 on a small split still has a variance)."""
    pairs = n_pos * n_neg
    if pairs == 0:
        return np.nan
    a = (auc * pairs + 0.5) / (pairs + 1)  # one pseudo-pair at 0.5: 1.0 -> (P + 0.5) / (P + 1)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    return float((a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / pairs)


def auroc_meta_analysis(
    predictions: pd.DataFrame, params: dict[str, Any] | None = None, bootstrap: Any | None = None
) -> pd.DataFrame:
    """Per (model, protocol): the random-effects pooled AUROC over cohorts (``META_COLUMNS``).

    ``bootstrap``: a ``summary.CohortBootstrap`` already drawn from ``predictions`` (e.g. for
    the cohort and overall summaries), else one is drawn here with ``params`` n_boot/seed.
    """
    from icb_kedro.evaluation import summary
    from icb_kedro.schema import SAMPLE_KEY

    params = params or {}
    method = str(params.get("method", "dl"))
    if bootstrap is None:
        bootstrap = summary.cohort_bootstrap(
            predictions,
            int(params.get("n_boot", 1000)),
            int(params.get("seed", 0)),
            float(params.get("level", 0.95)),
        )
    table, replicates, cohorts, level = (
        bootstrap.table,
        bootstrap.replicates,
        bootstrap.cohorts,
        bootstrap.level,
    )
    labels = table.drop_duplicates(["model", "protocol", "cohort", SAMPLE_KEY])
    positives = labels.groupby(["model", "protocol", "cohort"])["y_true"].agg(["sum", "size"])
    rows = []
    for (model, protocol), group in cohorts.groupby(["model", "protocol"], sort=True):
        effects, variances, not_estimable, floored = [], [], [], 0
        for cohort, auc in zip(group["cohort"], group["auroc_mean"], strict=True):
            variance = (
                float(np.nanvar(replicates[(model, protocol, cohort)], ddof=1))
                if np.isfinite(auc)
                else np.nan
            )
            if not np.isfinite(auc) or not np.isfinite(variance):
                not_estimable.append(cohort)
                continue
            if (
                variance <= 1e-12
            ):  # no bootstrap spread (a perfect split): the continuity-corrected floor
                n_pos, n = positives.loc[(model, protocol, cohort)]
                variance, floored = (
                    hanley_mcneil_variance(float(auc), int(n_pos), int(n - n_pos)),
                    floored + 1,
                )
            effects.append(float(auc))
            variances.append(variance)
        pooled = random_effects(effects, variances, method, level)
        rows.append(
            {
                "model": model,
                "protocol": protocol,
                "k": pooled["k"],
                "pooled_auroc": pooled["pooled"],
                "se": pooled["se"],
                "ci_low": pooled["ci_low"],
                "ci_high": pooled["ci_high"],
                "tau2": pooled["tau2"],
                "i2": pooled["i2"],
                "q": pooled["q"],
                "p_heterogeneity": pooled["p_heterogeneity"],
                "method": method,
                "n_floored": floored,
                "not_estimable": ",".join(not_estimable),
            }
        )
    return pd.DataFrame(rows, columns=list(META_COLUMNS)).astype(
        {"k": "int64", "n_floored": "int64"}
    )
