"""Calibration: Murphy's Brier decomposition, calibration slope, reliability curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.calibration import (
    POOLED,
    brier_decomposition,
    calibration_slope,
    calibration_table,
    fit_platt,
    quantile_bins,
    reliability_curves,
)


def _simulated(n: int = 4000, sharpen: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes drawn from true probabilities; predictions = the true logit x ``sharpen``."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-0.5, 1.2, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(float)
    return y, 1.0 / (1.0 + np.exp(-sharpen * logit))


def test_the_decomposition_adds_up_to_the_brier_score_exactly() -> None:
    y, p = _simulated()
    parts = brier_decomposition(y, p, n_bins=10)
    rebuilt = (
        parts["reliability"] - parts["resolution"] + parts["uncertainty"] + parts["within_bin"]
    )
    assert parts["brier"] == pytest.approx(np.mean((p - y) ** 2)) and rebuilt == pytest.approx(
        parts["brier"], abs=1e-12
    )
    assert parts["n_bins"] == 10 and parts["uncertainty"] == pytest.approx(
        y.mean() * (1 - y.mean())
    )


def test_textbook_cases() -> None:
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 1, 1], float)
    # Always predicting the prevalence: no reliability error, no resolution, Brier = uncertainty.
    flat = brier_decomposition(y, np.full(10, 0.4))
    assert flat["reliability"] == pytest.approx(0) and flat["resolution"] == pytest.approx(0)
    assert flat["brier"] == pytest.approx(0.24) and flat["within_bin"] == pytest.approx(0)
    # Two bins holding one value each (0.2 for the first half, 0.6 for the second): by hand,
    # observed rates 0.2 / 0.6, so reliability 0; resolution = (0.2-0.4)^2/2 + (0.6-0.4)^2/2 = 0.04.
    y = np.array([1, 0, 0, 0, 0, 1, 1, 1, 0, 0], float)
    two = brier_decomposition(y, np.array([0.2] * 5 + [0.6] * 5), n_bins=2)
    assert (
        two["n_bins"] == 2
        and two["reliability"] == pytest.approx(0)
        and two["resolution"] == pytest.approx(0.04)
    )
    assert two["within_bin"] == pytest.approx(0) and two["brier"] == pytest.approx(0.24 - 0.04)


def test_the_calibration_slope_sees_overconfident_predictions() -> None:
    y, p = _simulated()
    assert calibration_slope(y, p)[1] == pytest.approx(1.0, abs=0.1)  # calibrated
    y, p = _simulated(sharpen=2.0)
    assert calibration_slope(y, p)[1] == pytest.approx(0.5, abs=0.06)  # logits twice too large
    assert np.isnan(
        calibration_slope(np.ones(20), np.linspace(0.1, 0.9, 20))[1]
    )  # one class: not estimable


def test_platt_scaling_undoes_overconfidence_and_never_invents_a_map() -> None:
    from icb_kedro.models.portable import platt_scale

    y, p = _simulated(sharpen=2.0)  # logits twice too large
    intercept, slope = fit_platt(y, p)
    assert slope == pytest.approx(0.5, abs=0.06) and intercept == pytest.approx(0.0, abs=0.1)
    _, truth = _simulated()  # the true probabilities of the same draws
    assert np.abs(platt_scale(p, intercept, slope) - truth).max() < 0.05
    assert calibration_slope(y, platt_scale(p, intercept, slope))[1] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(platt_scale(p, 0.0, 1.0), p, atol=1e-9)  # (0, 1) is the identity
    assert fit_platt(np.ones(20), np.linspace(0.1, 0.9, 20)) == (0.0, 1.0)  # one class
    assert fit_platt(y[:5], p[:5]) == (0.0, 1.0)  # too few rows
    flipped = 1.0 - p  # a score that ranks backwards: a negative slope would invert it
    assert fit_platt(y, flipped) == (0.0, 1.0)


def test_quantile_bins_are_equal_count_and_ties_share_a_bin() -> None:
    bins = quantile_bins(np.arange(100) / 100, 4)
    assert np.bincount(bins).tolist() == [25, 25, 25, 25]
    assert set(quantile_bins(np.full(7, 0.3), 5)) == {0}


def test_tables_per_model_protocol_and_cohort() -> None:
    y, p = _simulated(n=600)
    predictions = pd.DataFrame(
        {
            "model": "m",
            "protocol": "loco",
            "cohort": np.repeat(["A", "B", "C"], 200),
            "y_true": y.astype(int),
            "y_prob": p,
        }
    )
    predictions.loc[predictions["cohort"] == "C", "y_true"] = (
        0  # a one-class cohort: reported, slope NaN
    )
    table = calibration_table(predictions, n_bins=5)
    assert table["scope"].tolist() == [POOLED, "A", "B", "C"] and table["n"].tolist() == [
        600,
        200,
        200,
        200,
    ]
    assert np.isnan(table.loc[table["scope"] == "C", "calibration_slope"]).all()
    assert (
        table["brier"]
        - (table["reliability"] - table["resolution"] + table["uncertainty"] + table["within_bin"])
    ).abs().max() < 1e-12
    curves = reliability_curves(predictions, n_bins=5)
    assert (
        len(curves) == 5
        and curves["n"].sum() == 600
        and curves["mean_prob"].is_monotonic_increasing
    )


def test_the_report_shows_reliability_curves_and_the_pooled_calibration_table() -> None:
    from icb_kedro.reporting.report import render_report
    from icb_kedro.reporting.sections_results import section_calibration
    from icb_kedro.reporting.study_inputs import StudyInputs

    y, p = _simulated(n=400)
    predictions = pd.DataFrame(
        {
            "sample_key": [f"A:{i}" for i in range(400)],
            "cohort": "A",
            "model": "m",
            "protocol": "loco",
            "repeat": 0,
            "trial": 0,
            "y_true": y.astype(int),
            "y_prob": p,
            "y_pred": (p > 0.5).astype(int),
            "n_train": 100,
            "threshold": 0.5,
        }
    )
    section = section_calibration(
        StudyInputs(predictions=predictions, calibration=calibration_table(predictions, n_bins=5))
    )
    html = render_report("t", [section])
    assert (
        "over 5 quantile bins" in html
    )  # the table's bin count, not a number written into the text
    assert (
        "Calibration slope" in html
        and html.count("<img") == 1
        and "Calibration per model and protocol" in html
    )
    empty = render_report("t", [section_calibration(StudyInputs())])
    assert "not run" in empty.lower() and "results_calibration" in empty
