"""Per-fold metrics equal scikit-learn; single-class folds give NaN, not exceptions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from icb_kedro.evaluation.metrics import auroc, average_precision, binary_metrics, fit_threshold
from icb_kedro.schema import METRICS

FIXED_CASES = [
    # (y_true, y_prob, threshold): ties across classes, ties within classes, perfect, inverted
    ([0, 0, 1, 1, 0, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.65, 0.65, 0.2, 0.9], 0.5),
    ([1, 0, 1, 0, 1, 0, 0, 0, 1, 0], [0.5, 0.5, 0.5, 0.2, 0.7, 0.7, 0.1, 0.3, 0.9, 0.5], 0.5),
    ([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], 0.3),
    ([0, 1, 0, 1, 1], [0.9, 0.1, 0.8, 0.2, 0.3], 0.25),
    (
        [1, 0, 0, 0, 0, 0],
        [0.6, 0.4, 0.4, 0.2, 0.0, 1.0],
        0.95,
    ),  # predicts one positive: a false one
]


def sklearn_metrics(y, p, threshold):
    predicted = (np.asarray(p) >= threshold).astype(int)
    return {
        "auroc": skm.roc_auc_score(y, p),
        "auprc": skm.average_precision_score(y, p),
        "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, zero_division=0),
        "recall": skm.recall_score(y, predicted, zero_division=0),
        "f1": skm.f1_score(y, predicted, zero_division=0),
        "brier": skm.brier_score_loss(y, p),
    }


@pytest.mark.parametrize(("y_true", "y_prob", "threshold"), FIXED_CASES)
def test_binary_metrics_equal_sklearn_on_fixed_examples(y_true, y_prob, threshold):
    ours = binary_metrics(y_true, y_prob, threshold)
    assert tuple(ours) == METRICS
    expected = sklearn_metrics(y_true, y_prob, threshold)
    for name in METRICS:
        assert ours[name] == pytest.approx(expected[name], abs=1e-12), name


def test_auroc_and_ap_equal_sklearn_on_random_tied_scores():
    rng = np.random.default_rng(7)
    for _ in range(12):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        p = np.round(rng.random(n), 1)  # coarse scores: many ties
        assert auroc(y, p) == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
        assert average_precision(y, p) == pytest.approx(
            skm.average_precision_score(y, p), abs=1e-12
        )


def test_known_values():
    # 2 responders x 2 non-responders, one discordant pair -> AUROC 3/4.
    assert auroc(np.array([1, 1, 0, 0]), np.array([0.9, 0.3, 0.5, 0.1])) == 0.75
    # AP: ranks R, N, R -> precision 1 at recall 1/2, 2/3 at recall 1.
    assert average_precision(np.array([1, 0, 1]), np.array([0.9, 0.8, 0.7])) == pytest.approx(
        0.5 + 0.5 * 2 / 3
    )


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_split_gives_nan_ranking_metrics_not_an_error(label):
    y = [label] * 4
    p = [0.2, 0.6, 0.7, 0.1]
    result = binary_metrics(y, p)
    assert math.isnan(result["auroc"]) and math.isnan(result["auprc"])
    predicted = (np.array(p) >= 0.5).astype(int)
    assert result["accuracy"] == skm.accuracy_score(y, predicted)
    assert result["brier"] == pytest.approx(skm.brier_score_loss(y, p, labels=[0, 1]))
    assert all(np.isfinite(result[m]) for m in ("accuracy", "precision", "recall", "f1", "brier"))


def test_accepts_pandas_and_bool_inputs():
    y = pd.Series([True, False, True, False])
    p = pd.Series([0.7, 0.2, 0.4, 0.6], dtype="float32")
    assert binary_metrics(y, p)["auroc"] == 0.75
    assert binary_metrics(pd.array([1, 0, 1, 0], dtype="Int8"), p)["auroc"] == 0.75


@pytest.mark.parametrize(
    ("y_true", "y_prob", "message"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], "0/1"),
        ([0, 1, 1], [0.1, float("nan"), 0.3], "probabilities"),
        ([0, 1, 1], [0.1, 1.2, 0.3], "probabilities"),
        ([0, 1], [0.1, 0.2, 0.3], "2 values"),
        ([], [], "empty"),
        (pd.array([1, None, 0], dtype="Int8"), [0.1, 0.2, 0.3], "0/1"),
    ],
)
def test_bad_input_raises_clear_value_error(y_true, y_prob, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(y_true, y_prob)


def test_youden_threshold_matches_sklearn_roc_curve():
    rng = np.random.default_rng(3)
    for _ in range(5):
        y = rng.integers(0, 2, 40)
        p = np.round(np.clip(0.3 * y + rng.random(40) * 0.7, 0, 1), 2)
        fpr, tpr, thresholds = skm.roc_curve(y, p, drop_intermediate=False)
        expected = thresholds[np.argmax(tpr - fpr)]
        threshold = fit_threshold(y, p, "youden")
        assert threshold == pytest.approx(expected)
        predicted = p >= threshold
        j = predicted[y == 1].mean() - predicted[y == 0].mean()
        assert j == pytest.approx(np.max(tpr - fpr))


def test_other_threshold_methods():
    y, p = [0, 0, 0, 1], [0.1, 0.2, 0.3, 0.9]
    assert fit_threshold(y, p, "fixed") == 0.5
    assert fit_threshold(y, p, "prevalence") == 0.25
    assert fit_threshold(y, p) == 0.9  # youden: the responder's score separates perfectly


def test_threshold_errors():
    with pytest.raises(ValueError, match="both classes"):
        fit_threshold([1, 1, 1], [0.2, 0.4, 0.9], "youden")
    with pytest.raises(ValueError, match="unknown threshold method"):
        fit_threshold([0, 1], [0.2, 0.4], "median")
