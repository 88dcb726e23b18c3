"""Calibration of predicted probabilities: reliability curves and the Brier decomposition.

AUROC says whether responders rank above non-responders; a clinician reading "P(response) =
0.7" also needs the 0.7 to mean 7 in 10. Per model and protocol (all held-out cohorts
pooled, and per cohort) this module reports:

* the **Brier score** and Murphy's (1973) decomposition over probability bins,
  ``Brier = reliability - resolution + uncertainty + within_bin``: *reliability* (lower is
  better) is the squared gap between the mean predicted probability and the observed
  response rate of a bin, *resolution* (higher is better) how far the bins' response rates
  spread around the overall rate, *uncertainty* = ō(1 - ō) the Brier score of always
  predicting the prevalence; ``within_bin`` is the variance of the probabilities inside the
  bins, which makes the identity exact (0 when every bin holds one probability value);
* **calibration-in-the-large** (observed rate minus mean predicted probability) and the
  **calibration slope** (logistic recalibration: the slope of ``logit P(y=1) = a + b·logit p``;
  1 is ideal, < 1 means predictions too extreme, the usual sign of overfitting);
* **reliability curves** (``sklearn.calibration.calibration_curve``, quantile bins).

Bins are quantiles of the predicted probabilities (equal-count), so sparse tails do not
produce empty or one-patient bins. A scope whose rows hold one class is reported with NaN
where a quantity needs both (slope), never dropped. Every prediction row counts once: a
patient scored in several repeats enters once per repeat, as in the AUROC tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CALIBRATION_COLUMNS = (
    "model",
    "protocol",
    "scope",
    "n",
    "n_pos",
    "mean_prob",
    "observed_rate",
    "calibration_in_the_large",
    "calibration_slope",
    "brier",
    "reliability",
    "resolution",
    "uncertainty",
    "within_bin",
    "n_bins",
)
CURVE_COLUMNS = ("model", "protocol", "bin", "n", "mean_prob", "observed_rate")
POOLED = "pooled"
#: Fewest rows (and rows of each class) for a calibration slope.
MIN_ROWS_FOR_SLOPE = 10


def quantile_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index of every probability: equal-count bins on the quantiles of ``p`` (ties share
    a bin, so fewer than ``n_bins`` bins may come back)."""
    p = np.asarray(p, float)
    edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
    if len(edges) < 2:
        return np.zeros(len(p), dtype=int)
    return np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, len(edges) - 2)


def brier_decomposition(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    """Brier score and its Murphy decomposition over quantile bins (see the module doc)."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    if len(y) == 0 or len(y) != len(p):
        raise ValueError(
            f"brier_decomposition needs matching non-empty y and p, got {len(y)} and {len(p)}"
        )
    bins = quantile_bins(p, n_bins)
    rate = y.mean()
    reliability = resolution = within = 0.0
    used = 0
    for b in np.unique(bins):
        in_bin = bins == b
        n_b, p_b, o_b = in_bin.sum(), p[in_bin].mean(), y[in_bin].mean()
        reliability += n_b * (p_b - o_b) ** 2
        resolution += n_b * (o_b - rate) ** 2
        # Brier within a bin = (p_b - o_b)^2 + var(p) - 2 cov(p, y) + o_b (1 - o_b): the terms
        # beyond reliability and the bin's own uncertainty are exactly what follows.
        within += np.sum((p[in_bin] - p_b) ** 2) - 2.0 * np.sum(
            (p[in_bin] - p_b) * (y[in_bin] - o_b)
        )
        used += 1
    n = len(y)
    return {
        "brier": float(np.mean((p - y) ** 2)),
        "reliability": reliability / n,
        "resolution": resolution / n,
        "uncertainty": float(rate * (1.0 - rate)),
        "within_bin": within / n,
        "n_bins": used,
    }


def calibration_slope(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(intercept a, slope b) of the logistic recalibration ``logit P(y=1) = a + b·logit p``
    (statsmodels GLM); NaN when there are too few rows or one class."""
    import statsmodels.api as sm

    y, p = np.asarray(y, float), np.clip(np.asarray(p, float), 1e-6, 1.0 - 1e-6)
    if len(y) < MIN_ROWS_FOR_SLOPE or y.sum() < 2 or (1.0 - y).sum() < 2 or np.ptp(p) < 1e-9:
        return float("nan"), float("nan")
    x = sm.add_constant(np.log(p / (1.0 - p)))
    try:
        fit = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    except Exception:  # noqa: BLE001 - perfect separation on a tiny cohort: not estimable
        return float("nan"), float("nan")
    return float(fit.params[0]), float(fit.params[1])


def fit_platt(y_train: np.ndarray, p_oof: np.ndarray) -> tuple[float, float]:
    """Post-hoc Platt scaling, fitted on TRAINING rows only: (intercept, slope) of the logistic
    recalibration of the training rows' out-of-fold probabilities (the same fit as
    :func:`calibration_slope`), to apply to test probabilities with
    ``models.portable.platt_scale``.

    Out-of-fold, not in-sample, probabilities: in-sample ones are overconfident, so a map
    fitted on them would stretch rather than shrink. The identity (0, 1) where the map is not
    estimable (one class, fewer than ``MIN_ROWS_FOR_SLOPE`` rows, constant or separable
    scores) or would invert the ranking (slope <= 0): recalibration never invents a map.
    """
    intercept, slope = calibration_slope(y_train, p_oof)
    if not (np.isfinite(intercept) and np.isfinite(slope)) or slope <= 0:
        return 0.0, 1.0
    return intercept, slope


def _row(model: str, protocol: str, scope: str, y: np.ndarray, p: np.ndarray, n_bins: int) -> dict:
    _, slope = calibration_slope(y, p)
    return {
        "model": model,
        "protocol": protocol,
        "scope": scope,
        "n": len(y),
        "n_pos": int(y.sum()),
        "mean_prob": float(p.mean()),
        "observed_rate": float(y.mean()),
        "calibration_in_the_large": float(y.mean() - p.mean()),
        "calibration_slope": slope,
        **brier_decomposition(y, p, n_bins),
    }


def calibration_table(predictions: pd.DataFrame, n_bins: int = 10) -> pd.DataFrame:
    """One row per (model, protocol, scope): scope ``pooled`` (every held-out cohort) and each
    cohort."""
    rows = []
    for (model, protocol), group in predictions.groupby(["model", "protocol"], sort=True):
        y, p = group["y_true"].to_numpy(float), group["y_prob"].to_numpy(float)
        rows.append(_row(model, protocol, POOLED, y, p, n_bins))
        for cohort, part in group.groupby("cohort", sort=True):
            rows.append(
                _row(
                    model,
                    protocol,
                    str(cohort),
                    part["y_true"].to_numpy(float),
                    part["y_prob"].to_numpy(float),
                    n_bins,
                )
            )
    return pd.DataFrame(rows, columns=list(CALIBRATION_COLUMNS))


def reliability_curves(predictions: pd.DataFrame, n_bins: int = 10) -> pd.DataFrame:
    """Pooled reliability curve points per (model, protocol): quantile bins of ``y_prob``
    (``sklearn.calibration.calibration_curve``), with the rows per bin."""
    from sklearn.calibration import calibration_curve

    rows = []
    for (model, protocol), group in predictions.groupby(["model", "protocol"], sort=True):
        y, p = group["y_true"].to_numpy(int), group["y_prob"].to_numpy(float)
        if len(np.unique(y)) < 2:
            continue
        observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
        counts = np.bincount(quantile_bins(p, n_bins))
        counts = counts[counts > 0]
        if len(counts) != len(observed):  # ties merged differently: report the curve without counts
            counts = np.full(len(observed), np.nan)
        for b, (o, m, n) in enumerate(zip(observed, predicted, counts, strict=True)):
            rows.append(
                {
                    "model": model,
                    "protocol": protocol,
                    "bin": b,
                    "n": n,
                    "mean_prob": float(m),
                    "observed_rate": float(o),
                }
            )
    return pd.DataFrame(rows, columns=list(CURVE_COLUMNS))
