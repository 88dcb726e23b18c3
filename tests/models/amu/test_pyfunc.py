"""Save/load round trips give identical predictions: portable files and the MLflow pyfunc."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.amu.pyfunc import AmuPyfuncModel, load_fitted, save_fitted
from icb_kedro.models.amu.train import fit_network, predict_proba
from icb_kedro.models.amu.train_config import TrainConfig

from .conftest import TINY_MODEL


@pytest.fixture(scope="module")
def fitted_and_frame():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(12)]
    log2_tpm = rng.uniform(0, 8, size=(30, 12))
    y = (log2_tpm[:, 0] > 4).astype(int)
    from icb_kedro.models.amu.features import amu_features

    frame = pd.DataFrame(log2_tpm, columns=genes).assign(sample_key=[f"s{i}" for i in range(30)])
    X = amu_features(frame, genes, "log2_tpm1")
    fitted = fit_network(
        X, y, model_config=TINY_MODEL, train_config=TrainConfig(epochs=2, seed=0), features=genes
    )
    return fitted, frame, X


def test_save_load_fitted_gives_identical_predictions(fitted_and_frame, tmp_path) -> None:
    fitted, _, X = fitted_and_frame
    loaded = load_fitted(save_fitted(fitted, tmp_path / "amu"))
    np.testing.assert_array_equal(predict_proba(loaded, X), predict_proba(fitted, X))
    assert loaded.features == fitted.features and loaded.model_config == fitted.model_config
    with pytest.raises(ValueError, match="no weights.npz"):
        load_fitted(tmp_path / "nothing")


def test_mlflow_pyfunc_round_trip(fitted_and_frame, tmp_path) -> None:
    import mlflow.pyfunc

    fitted, frame, X = fitted_and_frame
    # Explicit requirements: skips MLflow's requirement inference (a subprocess, slow here).
    mlflow.pyfunc.save_model(
        tmp_path / "pyfunc",
        python_model=AmuPyfuncModel(fitted, "log2_tpm1"),
        pip_requirements=["paddlepaddle"],
    )
    loaded = mlflow.pyfunc.load_model(str(tmp_path / "pyfunc"))
    shuffled = frame[frame.columns[::-1]]  # column order does not matter, gene names do
    out = loaded.predict(shuffled)
    assert list(out.columns) == ["sample_key", "y_prob"]
    np.testing.assert_array_equal(out["sample_key"], frame["sample_key"])
    np.testing.assert_allclose(
        out["y_prob"].to_numpy(), predict_proba(fitted, X), rtol=0, atol=1e-7
    )
    with pytest.raises(Exception, match="G3"):
        loaded.predict(frame.drop(columns=["G3"]))


def test_pyfunc_rejects_unknown_scale(fitted_and_frame) -> None:
    with pytest.raises(ValueError, match="input_scale"):
        AmuPyfuncModel(fitted_and_frame[0], "tpm")


def test_pyfunc_refuses_input_on_another_scale(fitted_and_frame) -> None:
    """A log2(TPM+1) model given the shared files' log2(TPM+0.001) refuses it, naming a value,
    instead of scoring it as ratios of the wrong TPM."""
    fitted, frame, _ = fitted_and_frame
    model = AmuPyfuncModel(fitted, "log2_tpm1")
    genes = list(fitted.features)
    milli = frame.assign(**{g: np.log2(np.exp2(frame[g]) - 1 + 0.001) for g in genes})
    with pytest.raises(ValueError, match=r"AMU expects log2\(TPM\+1\), in \[0, 19.93\]"):
        model.predict(None, milli)
