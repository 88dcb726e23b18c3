"""Linear readouts of a frozen encoder: fitted on training rows only, applied with numpy."""

from __future__ import annotations

import numpy as np
import pytest

from icb_kedro.models.ic2bert.readout import LinearReadout, fit_linear_readout, readout_features
from icb_kedro.models.ic2bert.weights import init_params


def _signal(n: int = 120, k: int = 30, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, k))
    x[:, :3] += 1.2 * y[:, None]
    return x, y


def test_readout_learns_and_round_trips_with_numpy_only() -> None:
    x, y = _signal()
    readout, oof = fit_linear_readout(
        x[:80], y[:80], "tokens", Cs=(0.01, 0.1, 1.0), n_splits=5, seed=0
    )
    assert readout.cv_auroc > 0.75 and oof.shape == (80,)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[80:], readout.predict_proba(x[80:])) > 0.75
    restored = LinearReadout.from_dict(readout.to_dict())
    np.testing.assert_allclose(restored.predict_proba(x[80:]), readout.predict_proba(x[80:]))


def test_readout_sees_training_rows_only() -> None:
    """Changing the test rows never changes the fitted readout (no leakage through the
    imputation means, the scaling or C)."""
    x, y = _signal()
    a, _ = fit_linear_readout(x[:80], y[:80], "tokens", seed=0)
    x_other = x.copy()
    x_other[80:] = 100.0
    b, _ = fit_linear_readout(x_other[:80], y[:80], "tokens", seed=0)
    assert a.to_dict() == b.to_dict()


def test_missing_genes_take_the_training_mean_and_unmeasured_genes_are_dropped() -> None:
    x, y = _signal()
    x[:40, 5] = np.nan  # a cohort without gene 5
    x[:, 7] = np.nan  # a gene no training row measures
    readout, _ = fit_linear_readout(x[:80], y[:80], "tokens", seed=0)
    assert not readout.keep[7] and readout.keep[5]
    row = x[80:81].copy()
    row[0, 5] = np.nan
    filled = row.copy()
    filled[0, 5] = np.nanmean(x[:80, 5])
    np.testing.assert_allclose(readout.predict_proba(row), readout.predict_proba(filled))


def test_per_gene_expected_bin_features_are_nan_where_missing(tiny_config, token_data) -> None:
    tokens = np.asarray(token_data[0][:5]).copy()
    tokens[0, :4] = tiny_config.missing_id
    features = readout_features(
        "per_gene_expected_bin", tiny_config, init_params(tiny_config, 0), tokens, 8
    )
    assert features.shape == (5, tiny_config.n_genes)
    assert (
        np.isnan(features[0, :4]).all()
        and np.isfinite(features[0, 4:]).all()
        and np.isfinite(features[1:]).all()
    )
    assert ((features[1:] >= 0) & (features[1:] <= tiny_config.n_bins - 1)).all()


def test_readout_needs_both_classes() -> None:
    x, _ = _signal()
    with pytest.raises(ValueError, match="both classes"):
        fit_linear_readout(x[:10], np.zeros(10, int), "tokens")


def test_anova_selection_keeps_the_informative_genes_and_sees_training_rows_only() -> None:
    """``n_features``: the k genes with the largest F on the training rows (the 3 signal
    genes here), carried in ``keep`` so the registered readout applies it; the test rows
    never move it, and an unmeasured gene is never chosen."""
    x, y = _signal()
    x[:, 7] = np.nan
    readout, oof = fit_linear_readout(x[:80], y[:80], "tokens", seed=0, n_features=3)
    assert np.flatnonzero(readout.keep).tolist() == [0, 1, 2] and readout.coef.shape == (3,)
    assert oof.shape == (80,) and readout.cv_auroc > 0.75
    restored = LinearReadout.from_dict(readout.to_dict())
    np.testing.assert_allclose(restored.predict_proba(x[80:]), readout.predict_proba(x[80:]))
    x_other = x.copy()
    x_other[80:] = 100.0
    again, _ = fit_linear_readout(x_other[:80], y[:80], "tokens", seed=0, n_features=3)
    assert again.to_dict() == readout.to_dict()
    every, _ = fit_linear_readout(x[:80], y[:80], "tokens", seed=0, n_features=1000)
    assert every.keep.sum() == x.shape[1] - 1  # k above the measured genes: all of them
