"""Per-fold classification metrics and training-set decision thresholds.

Every model pipeline scores its folds through :func:`binary_metrics`, so all models are
measured with the same definitions (keys = ``schema.METRICS``):

- ``auroc``: area under the ROC curve of P(responder), ties counted 1/2 (Mann-Whitney U).
- ``auprc``: positive-class average precision (step-wise, as scikit-learn's
  ``average_precision_score``; spec item 6: *not* the AMU code's micro-averaged AP).
- ``accuracy``/``precision``/``recall``/``f1`` at ``y_prob >= threshold`` (positive class).
- ``brier``: mean squared error of P(responder).

Why numpy instead of calling scikit-learn: with scikit-learn 1.9 the eight metric calls
cost ~50 ms per fold on this 2-core machine (input validation dominates), i.e. ~5 minutes
for the ~6,000 folds of a full comparison. The formulas below are the textbook ones and
``tests/evaluation/test_metrics.py`` checks them against scikit-learn on fixed and random
examples (with ties).

Undefined values: AUROC and AUPRC need both classes, so a single-class split gives NaN
for both (a fold is never an exception that kills a whole run). Ratios with an empty
denominator (precision with no predicted positives, recall with no positives, F1 with
neither) are 0, as scikit-learn's ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from icb_kedro.schema import METRICS

THRESHOLD_METHODS: tuple[str, ...] = ("youden", "fixed", "prevalence")


def as_binary_labels(values: Sequence | np.ndarray, name: str = "y_true") -> np.ndarray:
    """Labels as an int8 array of 0/1; ValueError on missing or other values."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:  # e.g. pandas <NA> in an object array
        raise ValueError(f"{name} must hold 0/1 labels without missing values: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = ~np.isin(array, (0.0, 1.0))
    if bad.any():
        raise ValueError(
            f"{name} must hold only 0/1 labels; {int(bad.sum())} values are not, e.g. "
            f"{array[bad][:3].tolist()}"
        )
    return array.astype(np.int8)


def as_probabilities(values: Sequence | np.ndarray, name: str = "y_prob") -> np.ndarray:
    """Probabilities as a float64 array; ValueError on NaN/inf or values outside [0, 1]."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    bad = ~np.isfinite(array) | (array < 0.0) | (array > 1.0)
    if bad.any():
        raise ValueError(
            f"{name} must be probabilities in [0, 1]; {int(bad.sum())} values are not, e.g. "
            f"{array[bad][:3].tolist()}"
        )
    return array


def _check_same_length(y_true: np.ndarray, y_prob: np.ndarray) -> None:
    if len(y_true) != len(y_prob):
        raise ValueError(f"y_true has {len(y_true)} values but y_prob has {len(y_prob)}")
    if len(y_true) == 0:
        raise ValueError("cannot score an empty prediction set")


def auroc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """AUROC as the Mann-Whitney U statistic (= trapezoidal ROC area); NaN if one class.

    The mean over responders of the fraction of non-responders scored lower, ties counted
    1/2 (midranks), counted with ``searchsorted`` on the sorted non-responder scores.
    """
    y_true = np.asarray(y_true)
    score = np.asarray(y_score, dtype=float)
    positives, negatives = score[y_true == 1], np.sort(score[y_true == 0])
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    lower = np.searchsorted(negatives, positives, "left")
    lower_or_tied = np.searchsorted(negatives, positives, "right")
    return float(np.sum(lower + lower_or_tied) / (2.0 * len(positives) * len(negatives)))


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Positive-class average precision, sum over thresholds of (R_k - R_{k-1}) P_k; NaN if one
    class."""
    y_true = np.asarray(y_true)
    n_pos = int(y_true.sum())
    if n_pos == 0 or n_pos == len(y_true):
        return float("nan")
    order = np.argsort(-np.asarray(y_score, dtype=float), kind="mergesort")
    score_sorted = np.asarray(y_score, dtype=float)[order]
    tp = np.cumsum(y_true[order])
    # One operating point per distinct score: the last index of each run of tied scores.
    last_of_tie = np.r_[np.diff(score_sorted) != 0, True]
    tp = tp[last_of_tie]
    predicted_pos = (np.flatnonzero(last_of_tie) + 1).astype(float)
    precision = tp / predicted_pos
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def binary_metrics(
    y_true: Sequence | np.ndarray,
    y_prob: Sequence | np.ndarray,
    threshold: float | Sequence | np.ndarray = 0.5,
) -> dict[str, float]:
    """All ``schema.METRICS`` of one scored set; ``y_prob`` is P(responder), positive =
    ``y_prob >= threshold``.

    ``threshold`` is one number, or one per row: pooled out-of-fold predictions of K splits
    are each judged by the threshold their own split fitted on its training rows.
    """
    labels = as_binary_labels(y_true)
    prob = as_probabilities(y_prob)
    _check_same_length(labels, prob)
    threshold = np.asarray(threshold, dtype=float)
    if threshold.ndim and threshold.shape != prob.shape:
        raise ValueError(f"threshold has {threshold.shape[0]} values for {len(prob)} rows")
    if not np.all(np.isfinite(threshold)):
        raise ValueError(f"threshold must be finite, got {threshold!r}")
    predicted = prob >= threshold
    positive = labels == 1
    tp = int(np.sum(predicted & positive))
    fp = int(np.sum(predicted & ~positive))
    fn = int(np.sum(~predicted & positive))
    tn = len(labels) - tp - fp - fn
    result = {
        "auroc": auroc(labels, prob),
        "auprc": average_precision(labels, prob),
        "accuracy": (tp + tn) / len(labels),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "brier": float(np.mean((prob - labels) ** 2)),
    }
    return {name: float(result[name]) for name in METRICS}


def fit_threshold(
    y_train: Sequence | np.ndarray, p_train: Sequence | np.ndarray, method: str = "youden"
) -> float:
    """Decision threshold fitted on TRAINING rows only (spec item 6: never on the evaluated set).

    - ``"youden"``: the training score maximising Youden's J = TPR - FPR for the rule
      ``p >= threshold`` (the thresholds of scikit-learn's ``roc_curve``); on ties in J the
      highest such score.
    - ``"fixed"``: 0.5, whatever the data.
    - ``"prevalence"``: the training responder rate, i.e. call a sample a responder when its
      probability exceeds the base rate (a common rule for imbalanced classes).
    """
    if method not in THRESHOLD_METHODS:
        raise ValueError(
            f"unknown threshold method {method!r}; expected one of {THRESHOLD_METHODS}"
        )
    if method == "fixed":
        return 0.5
    labels = as_binary_labels(y_train, "y_train")
    prob = as_probabilities(p_train, "p_train")
    _check_same_length(labels, prob)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise ValueError(
            f"fit_threshold({method!r}) needs both classes in the training rows; got "
            f"{n_pos}/{len(labels)} positives"
        )
    if method == "prevalence":
        return n_pos / len(labels)
    # ROC operating points at every distinct training score, highest first.
    order = np.argsort(-prob, kind="mergesort")
    sorted_prob = prob[order]
    last_of_tie = np.r_[np.diff(sorted_prob) != 0, True]
    tpr = np.cumsum(labels[order])[last_of_tie] / n_pos
    fpr = np.cumsum(1 - labels[order])[last_of_tie] / (len(labels) - n_pos)
    best = int(np.argmax(tpr - fpr))  # first maximum = highest threshold among ties
    return float(sorted_prob[last_of_tie][best])
