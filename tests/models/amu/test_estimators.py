"""scikit-learn wrappers: the CNN baseline (used by the baselines pipeline) and AMU."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from icb_kedro.models.amu.estimators import AmuClassifier, AmuCnnClassifier

from .conftest import separable_data


def test_cnn_classifier_fits_predicts_and_is_seeded() -> None:
    X, y = separable_data(n=60, n_genes=16)
    model = AmuCnnClassifier(epochs=30, seed=1)
    proba = model.fit(X, y).predict_proba(X)
    assert proba.shape == (60, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(X)) <= {0, 1}
    X_new, y_new = separable_data(n=60, n_genes=16, seed=5)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y_new, model.predict_proba(X_new)[:, 1]) > 0.8
    again = clone(model).fit(X, y).predict_proba(X)  # clone keeps the params, seed included
    np.testing.assert_array_equal(proba, again)


def test_classifiers_keep_label_values_and_params() -> None:
    X, y = separable_data(n=30, n_genes=8)
    labels = np.where(y == 1, "R", "NR")
    model = AmuClassifier(epochs=1, n_layers=1, ffn_dim=8, seed=0).fit(X, labels)
    assert list(model.classes_) == ["NR", "R"]
    assert set(model.predict(X)) <= {"NR", "R"}
    assert model.get_params()["n_layers"] == 1
    with pytest.raises(ValueError, match="exactly two classes"):
        AmuCnnClassifier().fit(X, np.zeros(30))
