"""Training: the loss goes down, same seed -> same numbers, nothing fitted sees test rows."""

from __future__ import annotations

import numpy as np
import pytest

from icb_kedro.models.amu.train import (
    fit_network,
    fit_predict,
    oversample_training_rows,
    predict_proba,
)
from icb_kedro.models.amu.train_config import TrainConfig

from .conftest import TINY_MODEL, separable_data


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def test_tiny_run_lowers_the_loss_and_learns(tiny_data) -> None:
    X, y = tiny_data
    # Without dropout the epoch loss is a clean signal (with it, a noisy one on 64 rows).
    model = {**TINY_MODEL, "dropout": 0.0, "head_dropout": 0.0}
    fitted = fit_network(
        X, y, model_config=model, train_config=TrainConfig(epochs=20, learning_rate=3e-3, seed=0)
    )
    assert len(fitted.loss_history) == 20
    assert np.mean(fitted.loss_history[-3:]) < 0.5 * np.mean(fitted.loss_history[:3])
    X_new, y_new = separable_data(seed=1)
    assert _auroc(y_new, predict_proba(fitted, X_new)) > 0.8
    assert fitted.n_train == 48 and fitted.n_synthetic == 16  # SMOTE to 32/32


def test_same_seed_same_numbers_other_seed_other_numbers(tiny_data) -> None:
    X, y = tiny_data
    runs = [
        fit_predict(
            X, y, X[:10], model_config=TINY_MODEL, train_config=TrainConfig(epochs=2, seed=seed)
        )
        for seed in (3, 3, 4)
    ]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])
    for name, value in runs[0][0].state.items():
        np.testing.assert_array_equal(value, runs[1][0].state[name])
    assert not np.array_equal(runs[0][2], runs[2][2])


def test_test_rows_never_influence_the_fit(tiny_data) -> None:
    """Scaler, SMOTE and weights depend on training rows only: changing the test rows changes
    nothing."""
    X, y = tiny_data
    config = TrainConfig(epochs=2, seed=0)
    fit_a, train_a, _ = fit_predict(
        X, y, np.zeros((5, X.shape[1])), model_config=TINY_MODEL, train_config=config
    )
    fit_b, train_b, _ = fit_predict(
        X, y, np.full((5, X.shape[1]), 1e3), model_config=TINY_MODEL, train_config=config
    )
    np.testing.assert_array_equal(train_a, train_b)
    np.testing.assert_allclose(fit_a.scaler_mean, X.mean(axis=0))  # fitted on the training rows
    for name, value in fit_a.state.items():
        np.testing.assert_array_equal(value, fit_b.state[name])


def test_smote_synthesises_from_training_minority_rows_only(tiny_data) -> None:
    X, y = tiny_data
    X_res, y_res = oversample_training_rows(X, y, k_neighbors=5, seed=0)
    np.testing.assert_array_equal(X_res[: len(X)], X)  # originals first, unchanged
    assert np.bincount(y_res).tolist() == [32, 32]
    minority = X[y == 1]
    for point in X_res[len(X) :]:
        # every synthetic row lies on a segment between two training minority rows
        distances = []
        for a in minority:
            direction = minority - a
            t = np.clip(
                ((point - a) @ direction.T) / np.maximum((direction**2).sum(axis=1), 1e-12), 0, 1
            )
            distances.append(np.min(np.linalg.norm(a + t[:, None] * direction - point, axis=1)))
        assert min(distances) < 1e-8


def test_smote_with_a_single_minority_row_is_skipped() -> None:
    X = np.arange(12.0).reshape(6, 2)
    y = np.array([0, 0, 0, 0, 0, 1])
    X_res, y_res = oversample_training_rows(X, y, k_neighbors=5, seed=0)
    assert len(X_res) == 6 and y_res.sum() == 1


def test_two_step_learning_rate_decay() -> None:
    config = TrainConfig(epochs=8, learning_rate=1e-3, lr_milestones=(0.5, 0.75))
    assert config.milestone_epochs() == [4, 6]
    assert TrainConfig(epochs=2, lr_milestones=(0.5, 0.75)).milestone_epochs() == [1, 2]
    with pytest.raises(ValueError, match="lr_milestones"):
        TrainConfig(lr_milestones=(0.8, 0.5))
    with pytest.raises(ValueError, match="unknown settings"):
        TrainConfig.from_dict({"epochz": 3})


def test_bad_training_data_raises(tiny_data) -> None:
    X, y = tiny_data
    with pytest.raises(ValueError, match="both classes"):
        fit_network(X, np.zeros_like(y), model_config=TINY_MODEL)
    with pytest.raises(ValueError, match="non-finite"):
        fit_network(np.where(X > 2, np.nan, X), y, model_config=TINY_MODEL)
    fitted = fit_network(X, y, model_config=TINY_MODEL, train_config=TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="12 feature columns"):
        predict_proba(fitted, X[:, :5])
