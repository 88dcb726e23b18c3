"""Bootstrap CIs cover the truth, DeLong matches its definition, combination and BH are right."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from icb_kedro.evaluation.statistics import (
    bh_adjust,
    bootstrap_auroc_ci,
    bootstrap_auroc_replicates,
    bootstrap_mean_auroc_ci,
    combine_cohort_differences,
    delong_covariance,
    delong_test,
    delong_test_over_trials,
    paired_bootstrap_auroc_difference,
    pooled_mean_ci,
)


def slow_delong_covariance(y, scores):
    """DeLong et al. (1988) by definition: structural components pair by pair."""
    scores = np.atleast_2d(scores)
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    m, n = pos.shape[1], neg.shape[1]
    k = scores.shape[0]
    v10 = np.zeros((k, m))
    v01 = np.zeros((k, n))
    for r in range(k):
        for i in range(m):
            for j in range(n):
                psi = 1.0 if pos[r, i] > neg[r, j] else 0.5 if pos[r, i] == neg[r, j] else 0.0
                v10[r, i] += psi / n
                v01[r, j] += psi / m
    aucs = v10.mean(axis=1)
    s10 = (v10 - aucs[:, None]) @ (v10 - aucs[:, None]).T / (m - 1)
    s01 = (v01 - aucs[:, None]) @ (v01 - aucs[:, None]).T / (n - 1)
    return aucs, s10 / m + s01 / n


def simulate(rng, n_pos, n_neg, shift):
    """Binormal scores: true AUROC = Phi(shift / sqrt(2))."""
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    return y, rng.normal(size=n_pos + n_neg) + shift * y


def test_fast_delong_equals_structural_components_definition():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 45)
    base = rng.normal(size=45) + y
    scores = np.vstack(
        [np.round(base, 1), np.round(base + rng.normal(size=45), 1), rng.integers(0, 3, 45)]
    )  # ties
    aucs, cov = delong_covariance(y, scores)
    expected_aucs, expected_cov = slow_delong_covariance(y, scores)
    np.testing.assert_allclose(aucs, expected_aucs, atol=1e-12)
    np.testing.assert_allclose(aucs, [roc_auc_score(y, s) for s in scores], atol=1e-12)
    np.testing.assert_allclose(cov, expected_cov, atol=1e-12)


def test_delong_test_statistic_and_identical_predictions():
    rng = np.random.default_rng(1)
    y, a = simulate(rng, 20, 30, 1.0)
    b = a + rng.normal(size=50)
    result = delong_test(y, a, b)
    _, cov = slow_delong_covariance(y, np.vstack([a, b]))
    se = np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert result.diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
    assert result.se == pytest.approx(se)
    assert result.p == pytest.approx(2 * norm.sf(abs(result.diff / se)))
    same = delong_test(y, a, a.copy())
    assert (same.diff, same.se, same.z, same.p) == (0.0, 0.0, 0.0, 1.0)


def test_delong_over_one_trial_is_plain_delong_and_duplicated_trials_add_no_evidence():
    rng = np.random.default_rng(2)
    y, a = simulate(rng, 12, 18, 0.8)
    b = 0.5 * a + rng.normal(size=30)
    plain = delong_test(y, a, b)
    one = delong_test_over_trials(y, a, b, np.zeros(30), np.arange(30))
    assert one.se == pytest.approx(plain.se) and one.p == pytest.approx(plain.p)
    # The same test set scored identically in two trials is the same evidence, not twice as much.
    twice = delong_test_over_trials(
        np.r_[y, y],
        np.r_[a, a],
        np.r_[b, b],
        np.repeat([0, 1], 30),
        np.r_[np.arange(30), np.arange(30)],
    )
    assert twice.diff == pytest.approx(plain.diff) and twice.se == pytest.approx(plain.se)


def overlapping_trials_dataset(rng, splits, y, n_trials):
    """Per-trial scores of two equally good models (null) and of one model, on overlapping
    splits."""
    latent = rng.normal(size=len(y)) + y
    rows = [
        (t, idx, latent[idx] + rng.normal(size=len(idx)), latent[idx] + rng.normal(size=len(idx)))
        for t, idx in enumerate(splits[:n_trials])
    ]
    trial = np.concatenate([np.full(len(idx), t) for t, idx, _, _ in rows])
    keys = np.concatenate([idx for _, idx, _, _ in rows])
    a = np.concatenate([sa for *_, sa, _ in rows])
    b = np.concatenate([sb for *_, sb in rows])
    return y[keys], a, b, trial, keys


def test_delong_over_overlapping_trials_matches_monte_carlo_variance_and_level():
    rng = np.random.default_rng(3)
    n_pos, n_neg = 15, 25
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    # 10 stratified 20% test splits of one cohort: each patient is tested ~2 times.
    splits = [
        np.r_[rng.choice(n_pos, 3, replace=False), n_pos + rng.choice(n_neg, 5, replace=False)]
        for _ in range(10)
    ]
    diffs, variances, p_values = [], [], []
    for _ in range(300):
        labels, a, b, trial, keys = overlapping_trials_dataset(
            rng, splits, y, 10
        )  # a, b equally good: null
        result = delong_test_over_trials(labels, a, b, trial, keys)
        diffs.append(result.diff)
        variances.append(result.se**2)
        p_values.append(result.p)
    assert (
        0.9 < np.mean(variances) / np.var(diffs) < 1.4
    )  # slightly conservative, never anti-conservative
    assert np.mean(np.array(p_values) < 0.05) <= 0.08


def test_delong_over_trials_needs_two_per_class_per_trial():
    y = np.array([1, 0, 0, 1, 0, 0])  # each trial tests one responder
    a = np.array([0.9, 0.1, 0.2, 0.8, 0.3, 0.4])
    result = delong_test_over_trials(
        y, a, a[::-1].copy(), [0, 0, 0, 1, 1, 1], ["r1", "n1", "n2", "r2", "n1", "n3"]
    )
    assert np.isfinite(result.diff) and np.isnan(result.se) and np.isnan(result.p)


def test_bootstrap_ci_covers_true_auroc_on_simulated_data():
    rng = np.random.default_rng(4)
    shift = 1.0
    truth = norm.cdf(shift / np.sqrt(2))
    covered, widths = [], []
    for sim in range(50):
        y, score = simulate(rng, 40, 40, shift)
        ci = bootstrap_auroc_ci(y, norm.cdf(score), n_boot=400, seed=sim)
        assert ci.estimate == pytest.approx(roc_auc_score(y, score))
        covered.append(ci.ci_low <= truth <= ci.ci_high)
        widths.append(ci.ci_high - ci.ci_low)
    assert np.mean(covered) >= 0.86
    assert 0.1 < np.mean(widths) < 0.3  # Hanley-McNeil: 2 x 1.96 x ~0.045 = 0.18


def test_patient_bootstrap_over_overlapping_trials_covers_truth_and_is_wider_than_per_trial():
    rng = np.random.default_rng(5)
    n_pos, n_neg = 15, 25
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    splits = [
        np.r_[rng.choice(n_pos, 3, replace=False), n_pos + rng.choice(n_neg, 5, replace=False)]
        for _ in range(10)
    ]
    truth = norm.cdf(1.0 / np.sqrt(2 * 2.0))  # latent N(y, 1) + noise N(0, 1): shift 1, variance 2
    covered, ratios = [], []
    for sim in range(60):
        labels, a, _, trial, keys = overlapping_trials_dataset(rng, splits, y, 10)
        patient = bootstrap_mean_auroc_ci(labels, norm.cdf(a), trial, keys, n_boot=300, seed=sim)
        per_trial = bootstrap_mean_auroc_ci(
            labels, norm.cdf(a), trial, keys, n_boot=300, seed=sim, resample="trial"
        )
        assert patient.estimate == pytest.approx(
            np.mean([roc_auc_score(labels[trial == t], a[trial == t]) for t in range(10)])
        )
        covered.append(patient.ci_low <= truth <= patient.ci_high)
        ratios.append((patient.ci_high - patient.ci_low) / (per_trial.ci_high - per_trial.ci_low))
    assert np.mean(covered) >= 0.82
    assert np.median(ratios) > 1.2  # per-trial resampling treats overlapping splits as new patients


def test_bootstrap_is_stratified_and_deterministic():
    y = np.array([1, 0, 0, 0, 0])  # a single responder: every replicate must keep it
    score = np.array([0.6, 0.1, 0.7, 0.3, 0.2])
    replicates = bootstrap_auroc_replicates(y, score, n_boot=200, seed=11)
    assert replicates.shape == (200,) and np.isfinite(replicates).all()
    np.testing.assert_array_equal(
        replicates, bootstrap_auroc_replicates(y, score, n_boot=200, seed=11)
    )
    assert not np.array_equal(replicates, bootstrap_auroc_replicates(y, score, n_boot=200, seed=12))


def test_bootstrap_input_errors():
    with pytest.raises(ValueError, match="different labels"):
        bootstrap_auroc_replicates(
            [1, 0, 0], [0.2, 0.3, 0.4], trials=[0, 0, 1], patient_keys=["a", "b", "a"]
        )
    with pytest.raises(ValueError, match="more than once"):
        bootstrap_auroc_replicates(
            [1, 0, 1], [0.2, 0.3, 0.4], trials=[0, 0, 0], patient_keys=["a", "b", "a"]
        )
    with pytest.raises(ValueError, match="resample"):
        bootstrap_auroc_replicates([1, 0], [0.2, 0.3], resample="cohort")


def test_paired_bootstrap_difference():
    rng = np.random.default_rng(6)
    y, a = simulate(rng, 30, 30, 1.5)
    noise = rng.normal(size=60)
    same = paired_bootstrap_auroc_difference(y, a, a, n_boot=300, seed=0)
    assert (same.diff, same.ci_low, same.ci_high, same.p) == (0.0, 0.0, 0.0, 1.0)
    better = paired_bootstrap_auroc_difference(y, a, noise, n_boot=300, seed=0)
    assert better.diff == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, noise))
    assert 0 < better.ci_low < better.diff < better.ci_high and better.p < 0.01


def test_combine_cohort_differences_is_inverse_variance_and_weighted_stouffer():
    diffs = np.array([0.10, 0.02, -0.05, 0.2])
    ses = np.array([0.05, 0.04, 0.10, 0.0])  # the zero-SE cohort carries no variance information
    result = combine_cohort_differences(diffs, ses)
    w = 1 / ses[:3] ** 2
    assert result.n_cohorts == 3
    assert result.diff == pytest.approx(np.sum(w * diffs[:3]) / w.sum())
    assert result.se == pytest.approx(1 / np.sqrt(w.sum()))
    stouffer = np.sum((diffs[:3] / ses[:3]) / ses[:3]) / np.sqrt(np.sum(1 / ses[:3] ** 2))
    assert result.z == pytest.approx(stouffer)
    assert result.p == pytest.approx(2 * norm.sf(abs(stouffer)))
    assert np.isnan(combine_cohort_differences([np.nan], [0.1]).p)


def test_bh_adjust():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    q = bh_adjust(p)
    # Sorted finite p: .01 .03 .04 .5 (m = 4) -> .04, .0533, .0533, .5
    np.testing.assert_allclose(q[[0, 2, 1, 4]], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])
    assert np.isnan(q[3])


def test_pooled_mean_ci_keeps_cohorts_fixed():
    replicates = np.array(
        [np.linspace(0.5, 0.7, 101), np.full(101, 0.9)]
    )  # cohort 2 has no uncertainty
    low, high = pooled_mean_ci(replicates, level=0.9)
    assert low == pytest.approx((0.51 + 0.9) / 2) and high == pytest.approx((0.69 + 0.9) / 2)
