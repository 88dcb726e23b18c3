"""Baseline estimators: every family fits, seeds reproduce, and nothing fitted sees a test row."""

from __future__ import annotations

import numpy as np
import pytest

from icb_kedro.models.baselines.estimators import (
    MODEL_FAMILIES,
    ModelSpec,
    expand_candidates,
    log_ratio_features,
    model_spec_from_params,
)
from icb_kedro.models.baselines.fold_fit import fit_predict_fold, inner_cv_splits, params_to_json

SENTINEL = 1e6

TINY_SPECS = {
    "logreg": {"grid": {"C": [0.1, 1.0]}},
    "svm": {"grid": {"kernel": ["linear", "rbf"], "C": [1], "gamma": [0.1]}},
    "rf": {"search": "random", "n_iter": 2, "grid": {"n_estimators": [5, 10], "max_depth": [2, 3]}},
    "adaboost": {
        "search": "random",
        "n_iter": 2,
        "grid": {"n_estimators": [5, 10], "estimator__max_depth": [1, 2]},
    },
    "xgboost": {
        "search": "random",
        "n_iter": 2,
        "grid": {"n_estimators": [5, 10], "max_depth": [2]},
    },
    "mlp": {"grid": {"alpha": [1.0]}, "params": {"hidden_layer_sizes": [8], "max_iter": 50}},
}


def make_data(seed: int = 0, n_train: int = 60, n_test: int = 20, n_genes: int = 12):
    rng = np.random.default_rng(seed)
    y = (np.arange(n_train + n_test) % 3 == 0).astype(int)  # 1/3 responders
    x = rng.normal(size=(len(y), n_genes)) + 1.5 * y[:, None] * (np.arange(n_genes) < 3)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def spec_for(family: str) -> ModelSpec:
    return model_spec_from_params(family, TINY_SPECS[family])


@pytest.mark.parametrize("family", sorted(TINY_SPECS))
def test_every_family_fits_on_training_rows_and_scores_the_test_rows(family):
    x_train, y_train, x_test, y_test = make_data()
    fit = fit_predict_fold(spec_for(family), x_train, y_train, x_test, seed=3)
    assert fit.y_prob.shape == (len(x_test),)
    assert np.all((fit.y_prob >= 0) & (fit.y_prob <= 1))
    assert 0.0 <= fit.threshold <= 1.0
    assert fit.n_inner_splits == 3 and np.isfinite(fit.inner_auroc)
    grid = TINY_SPECS[family]["grid"]
    assert set(fit.best_params) == set(grid)
    assert all(
        fit.best_params[k] in [tuple(v) if isinstance(v, list) else v for v in grid[k]]
        for k in grid
    )
    # The signal is strong: every family ranks the test rows well above chance.
    from icb_kedro.evaluation.metrics import auroc

    assert auroc(y_test, fit.y_prob) > 0.7


def test_model_families_cover_the_issue_list():
    assert MODEL_FAMILIES == ("logreg", "svm", "rf", "adaboost", "xgboost", "mlp", "cnn")


def test_same_seed_same_numbers_and_the_seed_matters():
    x_train, y_train, x_test, _ = make_data()
    spec = spec_for("rf")
    first = fit_predict_fold(spec, x_train, y_train, x_test, seed=11)
    again = fit_predict_fold(spec, x_train, y_train, x_test, seed=11)
    np.testing.assert_array_equal(first.y_prob, again.y_prob)
    assert (first.threshold, first.best_params) == (again.threshold, again.best_params)
    other = fit_predict_fold(spec, x_train, y_train, x_test, seed=12)
    assert not np.array_equal(first.y_prob, other.y_prob)


def _fitted_state(fit) -> dict:
    """Everything a fold fitted: scaler, selected genes, classifier weights, threshold, search."""
    pipeline = fit.estimator
    scaler = pipeline.named_steps["scale"]
    clf = pipeline.named_steps["clf"]
    state = {
        "scale_mean": scaler.mean_.copy(),
        "scale_sd": scaler.scale_.copy(),
        "n_seen": int(scaler.n_samples_seen_),
        "coef": clf.coef_.copy(),
        "threshold": fit.threshold,
        "best": params_to_json(fit.best_params),
        "inner": fit.inner_auroc,
    }
    if "select" in pipeline.named_steps:
        state["selected"] = pipeline.named_steps["select"].get_support().copy()
    return state


@pytest.mark.parametrize("smote", [False, True])
def test_sentinel_in_test_rows_changes_no_fitted_object(smote):
    """Leakage test: scaler, feature selection, SMOTE, search and threshold never see a test row.

    A sentinel value (1e6) in the test rows would move the scaler's mean, the selected genes,
    the SMOTE samples, the chosen C and the threshold if any of them saw a test row; a
    sentinel in ONE training row does move them (the test is sensitive).
    """
    x_train, y_train, x_test, _ = make_data(n_train=90)
    spec = spec_for("logreg")
    kwargs = dict(seed=5, smote=smote, n_features=6)
    clean = fit_predict_fold(spec, x_train, y_train, x_test, **kwargs)
    poisoned_test = np.full_like(x_test, SENTINEL)
    with_sentinel = fit_predict_fold(spec, x_train, y_train, poisoned_test, **kwargs)

    before, after = _fitted_state(clean), _fitted_state(with_sentinel)
    assert before["n_seen"] == len(x_train)
    np.testing.assert_allclose(before["scale_mean"], x_train.mean(axis=0))
    for key in before:
        np.testing.assert_array_equal(before[key], after[key], err_msg=key)
    assert not np.array_equal(clean.y_prob, with_sentinel.y_prob)  # the test rows did change

    poisoned_train = x_train.copy()
    poisoned_train[0] = SENTINEL
    moved = _fitted_state(fit_predict_fold(spec, poisoned_train, y_train, x_test, **kwargs))
    assert not np.allclose(moved["scale_mean"], before["scale_mean"])
    assert not np.allclose(moved["coef"], before["coef"])


def _overconfident_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """600 patients, 30 genes of which 4 carry signal: L2-LR at C = 10 is overconfident."""
    rng = np.random.default_rng(seed)
    y = (rng.random(600) < 0.4).astype(int)
    return rng.normal(size=(600, 30)) + 0.6 * y[:, None] * (np.arange(30) < 4), y


def test_post_hoc_platt_is_fitted_on_training_rows_and_travels_with_the_estimator():
    """Platt scaling is fitted on the training rows' out-of-fold probabilities only: test rows
    (even absurd ones) leave the map unchanged; the returned estimator applies the same map;
    on held-out rows it brings probabilities nearer calibration than the model's own."""
    from icb_kedro.evaluation.calibration import calibration_slope
    from icb_kedro.models.portable import PlattScaled, platt_scale

    spec = model_spec_from_params("logreg", {"grid": {"C": [10.0]}})
    kwargs = dict(seed=3, inner_splits=5)
    log_slope, brier = {"none": [], "platt": []}, {"none": [], "platt": []}
    for seed in range(4):
        x, y = _overconfident_data(seed)
        raw = fit_predict_fold(spec, x[:300], y[:300], x[300:], **kwargs)
        fit = fit_predict_fold(spec, x[:300], y[:300], x[300:], calibration="platt", **kwargs)
        intercept, slope = fit.platt
        assert raw.platt == (0.0, 1.0) and 0 < slope < 1  # the map shrinks the overconfident logits
        np.testing.assert_allclose(fit.y_prob, platt_scale(raw.y_prob, intercept, slope), atol=1e-9)
        assert isinstance(fit.estimator, PlattScaled)
        np.testing.assert_allclose(
            fit.estimator.predict_proba(x[300:])[:, 1], fit.y_prob, atol=1e-12
        )
        for name, result in (("none", raw), ("platt", fit)):
            log_slope[name].append(abs(np.log(calibration_slope(y[300:], result.y_prob)[1])))
            brier[name].append(np.mean((result.y_prob - y[300:]) ** 2))
    # Held-out rows, averaged over four draws (one draw of 300 rows is noisy):
    assert np.mean(log_slope["platt"]) < np.mean(log_slope["none"]) and np.mean(
        brier["platt"]
    ) < np.mean(brier["none"])
    # No test row reaches the map (or the threshold).
    poisoned = fit_predict_fold(
        spec, x[:300], y[:300], np.full_like(x[300:], SENTINEL), calibration="platt", **kwargs
    )
    assert poisoned.platt == fit.platt and poisoned.threshold == fit.threshold
    with pytest.raises(ValueError, match="calibration must be one of"):
        fit_predict_fold(spec, x[:300], y[:300], x[300:], calibration="isotonic", **kwargs)


def test_svm_probabilities_are_platt_scaled_on_training_rows():
    from sklearn.calibration import CalibratedClassifierCV

    x_train, y_train, x_test, _ = make_data()
    fit = fit_predict_fold(spec_for("svm"), x_train, y_train, x_test, seed=0)
    assert isinstance(fit.estimator, CalibratedClassifierCV)
    assert len(fit.estimator.calibrated_classifiers_) == 1  # ensemble=False: one SVM on all rows
    assert 0 < fit.y_prob.min() < fit.y_prob.max() < 1


def test_smote_resamples_training_rows_only_inside_the_pipeline():
    x_train, y_train, x_test, _ = make_data(n_train=90)
    fit = fit_predict_fold(spec_for("logreg"), x_train, y_train, x_test, seed=1, smote=True)
    assert "smote" in fit.estimator.named_steps
    # imblearn samplers only act in fit: predicting the training rows gives one row each.
    assert fit.estimator.predict_proba(x_train).shape == (len(x_train), 2)
    resampled_x, resampled_y = fit.estimator.named_steps["smote"].fit_resample(x_train, y_train)
    assert np.bincount(resampled_y).tolist() == [60, 60] and len(resampled_x) == 120


def test_inner_cv_is_capped_by_the_smaller_class_and_skipped_below_two():
    assert inner_cv_splits(np.array([1, 1, 0, 0, 0, 0]), 3) == 2
    assert inner_cv_splits(np.array([1] * 5 + [0] * 9), 3) == 3
    assert inner_cv_splits(np.array([1, 0, 0, 0]), 3) == 0
    x_train, y_train, x_test, _ = make_data()
    y_one = np.zeros_like(y_train)
    y_one[0] = 1  # a single responder: no inner CV, first candidates, in-sample threshold
    fit = fit_predict_fold(spec_for("logreg"), x_train, y_one, x_test, seed=0)
    assert fit.n_inner_splits == 0 and fit.best_params == {"C": 0.1} and np.isnan(fit.inner_auroc)


def test_feature_selection_keeps_k_genes_fitted_on_training_rows():
    x_train, y_train, x_test, _ = make_data()
    fit = fit_predict_fold(spec_for("logreg"), x_train, y_train, x_test, seed=0, n_features=3)
    selected = fit.estimator.named_steps["select"].get_support()
    assert selected.sum() == 3 and selected[:3].all()  # the three informative genes
    everything = fit_predict_fold(
        spec_for("logreg"), x_train, y_train, x_test, seed=0, n_features=100
    )
    assert "select" not in everything.estimator.named_steps  # k >= genes: no selection step


def test_genes_a_cohort_does_not_measure_take_the_training_mean():
    """NaN = a gene the sample's cohort does not measure: imputed inside the pipeline with the
    training rows' mean (so test rows never shape it), not refused and not dropped."""
    x_train, y_train, x_test, _ = make_data()
    spec = spec_for("logreg")
    x_train = x_train.copy()
    x_train[: len(x_train) // 3, 0] = np.nan  # one source cohort lacks gene 0
    lacking = x_test.copy()
    lacking[:, 0] = np.nan  # the held-out cohort lacks it too
    fit = fit_predict_fold(spec, x_train, y_train, lacking, seed=0)
    assert np.isfinite(fit.y_prob).all() and fit.estimator.steps[0][0] == "impute"
    filled = x_test.copy()
    filled[:, 0] = np.nanmean(x_train[:, 0])
    np.testing.assert_allclose(fit.estimator.predict_proba(filled)[:, 1], fit.y_prob)
    one_row = fit_predict_fold(spec, x_train, y_train, lacking[:1], seed=0)
    np.testing.assert_allclose(one_row.y_prob, fit.y_prob[:1])  # other test rows never matter


def test_bad_inputs_are_clear_errors():
    x_train, y_train, x_test, _ = make_data()
    spec = spec_for("logreg")
    with pytest.raises(ValueError, match="x_train has infinite values"):
        fit_predict_fold(spec, np.where(x_train > 2, np.inf, x_train), y_train, x_test, seed=0)
    with pytest.raises(ValueError, match="both classes"):
        fit_predict_fold(spec, x_train, np.zeros_like(y_train), x_test, seed=0)
    with pytest.raises(ValueError, match="same columns"):
        fit_predict_fold(spec, x_train, y_train, x_test[:, :3], seed=0)
    with pytest.raises(ValueError, match="threshold_source"):
        fit_predict_fold(spec, x_train, y_train, x_test, seed=0, threshold_source="test")
    with pytest.raises(ValueError, match="unknown family"):
        ModelSpec("knn", "knn")
    with pytest.raises(ValueError, match="needs a non-empty grid"):
        ModelSpec("rf", "rf", search="random")
    with pytest.raises(ValueError, match="start/stop/step"):
        expand_candidates({"start": 1, "stop": 5}, "grid.x")


def test_params_expand_ranges_and_tuples():
    spec = model_spec_from_params(
        "rf",
        {
            "search": "random",
            "n_iter": 4,
            "grid": {"n_estimators": {"start": 10, "stop": 300, "step": 10}, "max_depth": [2, 3]},
        },
    )
    assert (
        spec.grid["n_estimators"] == list(range(10, 300, 10))
        and len(spec.grid["n_estimators"]) == 29
    )
    mlp = model_spec_from_params("mlp", {"grid": {"hidden_layer_sizes": [[8], [8, 4]]}})
    assert mlp.grid["hidden_layer_sizes"] == [(8,), (8, 4)] and mlp.search == "grid"
    assert model_spec_from_params("cnn", {"protocols": ["amu_holdout"]}).protocols == (
        "amu_holdout",
    )
    assert params_to_json({"b": np.int64(2), "a": (8, 4)}) == '{"a": [8, 4], "b": 2}'


def test_log_ratio_features_match_the_amu_encoding():
    ratios = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    np.testing.assert_allclose(log_ratio_features(ratios), np.log(ratios + 1e-6))
    with pytest.raises(ValueError):
        log_ratio_features(np.array([[-0.1, 1.1]]))


def test_the_amu_cnn_runs_as_a_baseline():
    pytest.importorskip("paddle")
    x_train, y_train, x_test, _ = make_data(n_genes=16)
    spec = model_spec_from_params(
        "cnn", {"search": "none", "params": {"epochs": 2, "batch_size": 16}}
    )
    fit = fit_predict_fold(spec, x_train, y_train, x_test, seed=0)
    assert fit.y_prob.shape == (len(x_test),) and np.all((fit.y_prob >= 0) & (fit.y_prob <= 1))
    again = fit_predict_fold(spec, x_train, y_train, x_test, seed=0)
    np.testing.assert_allclose(fit.y_prob, again.y_prob)


def test_tiny_training_sets_still_give_a_training_threshold():
    """Within-cohort folds with 3 or 2 responders (Riaz, Padron): nested CVs shrink to fit."""
    x_train, y_train, x_test, _ = make_data(n_train=12, n_test=6)  # 4 responders, 8 non-responders
    three = y_train.copy()
    three[np.flatnonzero(three)[0]] = 0
    svm = fit_predict_fold(spec_for("svm"), x_train, three, x_test, seed=0)
    # 3 inner splits; each out-of-fold part holds 2 responders: Platt scaling nests 2 splits.
    assert svm.n_inner_splits == 3 and svm.threshold_source == "oof"
    two = three.copy()
    two[np.flatnonzero(two)[0]] = 0
    svm = fit_predict_fold(spec_for("svm"), x_train, two, x_test, seed=0)
    # 2 responders: out-of-fold parts hold 1, too few for a nested Platt CV -> in-sample threshold.
    assert svm.n_inner_splits == 2 and svm.threshold_source == "in_sample"
    logreg = fit_predict_fold(spec_for("logreg"), x_train, three, x_test, seed=0, smote=True)
    assert logreg.threshold_source == "oof" and 0.0 <= logreg.threshold <= 1.0
    with pytest.raises(ValueError, match="SMOTE needs >= 2 rows"):
        fit_predict_fold(spec_for("logreg"), x_train, two, x_test, seed=0, smote=True)
