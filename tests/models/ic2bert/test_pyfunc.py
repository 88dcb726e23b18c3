"""MLflow registry round-trip of the IC2Bert pyfunc and its refusal of incomplete inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.ic2bert.checkpoint import ModelBundle
from icb_kedro.models.ic2bert.predict import score_frame
from icb_kedro.models.ic2bert.pyfunc import IC2BertPyfunc, cohort_zscore, log_model
from icb_kedro.models.ic2bert.tokenizer import fit_quantile_bins
from icb_kedro.models.ic2bert.weights import init_params


@pytest.fixture
def bundle(tiny_config) -> tuple[ModelBundle, pd.DataFrame]:
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(tiny_config.n_genes)]
    cohort = pd.DataFrame(
        rng.normal(5, 2, size=(25, len(genes))), columns=genes, index=[f"s{i}" for i in range(25)]
    )
    training = pd.DataFrame(
        rng.normal(size=(40, len(genes))), columns=genes
    )  # bins come from other rows
    bins = fit_quantile_bins(training, genes, tiny_config.n_bins)
    metadata = {"held_out": "X", "input_transform": "cohort_zscore"}
    params = init_params(tiny_config, 7)
    head = params[
        "ic2bert/classification_head"
    ]  # starts at zero weights: give it a ranking to score
    params["ic2bert/classification_head"] = {
        "w": 0.3 * rng.normal(size=np.shape(head["w"])).astype(np.float32),
        "b": np.asarray(head["b"]),
    }
    return ModelBundle(tiny_config, params, bins, metadata), cohort


def test_registry_round_trip(tmp_path, monkeypatch, bundle) -> None:
    import mlflow

    model_bundle, cohort = bundle
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with mlflow.start_run():
            info = log_model(
                model_bundle.to_dict(), name="ic2bert", registered_model_name="icb_ic2bert_test"
            )
        assert info.signature.inputs.input_names() == list(model_bundle.genes)
        loaded = mlflow.pyfunc.load_model("models:/icb_ic2bert_test/1")
        # The model's code travels with it (code/icb_kedro), but here, where the project is
        # installed and imported, that partial copy is taken off sys.path again: joblib or Dask
        # workers started later must import the project, not the copy.
        import sys

        from icb_kedro.models.portable import _is_model_code

        assert not [e for e in sys.path if e and _is_model_code(e)]
        scored = loaded.predict(cohort.assign(extra_column=1.0))  # extra columns are ignored
        expected = score_frame(model_bundle, cohort_zscore(cohort))
        np.testing.assert_allclose(scored["y_prob"].to_numpy(), expected, rtol=1e-6)
        assert list(scored.index) == list(cohort.index)
        latest = mlflow.pyfunc.load_model("models:/icb_ic2bert_test/latest")
        np.testing.assert_allclose(latest.predict(cohort)["y_prob"].to_numpy(), expected, rtol=1e-6)
        # A gene the cohort does not measure, passed as a NaN column or left out (the signature's
        # gene columns are optional, so MLflow lets it through): scored with [MISSING] either way.
        unmeasured = cohort.assign(G3=np.nan)
        expected_missing = score_frame(model_bundle, cohort_zscore(unmeasured))
        np.testing.assert_allclose(
            loaded.predict(unmeasured)["y_prob"].to_numpy(), expected_missing, rtol=1e-6
        )
        np.testing.assert_allclose(
            loaded.predict(cohort.drop(columns=["G3"]))["y_prob"].to_numpy(),
            expected_missing,
            rtol=1e-6,
        )
    finally:
        mlflow.set_tracking_uri(None)


def test_pyfunc_scores_unmeasured_genes_as_missing_and_refuses_bad_values(bundle, caplog) -> None:
    model_bundle, cohort = bundle
    model = IC2BertPyfunc(model_bundle.to_dict())
    with caplog.at_level("WARNING"):
        lacking = model.predict(None, cohort.drop(columns=["G0", "G5"]))
    assert "lacks 2 of the model's 12 genes (entered as [MISSING]): G0, G5" in caplog.text
    assert lacking["y_prob"].between(0, 1).all()
    np.testing.assert_allclose(
        lacking["y_prob"], model.predict(None, cohort.assign(G0=np.nan, G5=np.nan))["y_prob"]
    )
    assert not np.allclose(
        lacking["y_prob"], model.predict(None, cohort)["y_prob"]
    )  # [MISSING] is not a value
    with pytest.raises(ValueError, match=r"lacks 12 of the model's 12 genes"):
        model.predict(
            None, cohort.rename(columns=str.lower)
        )  # e.g. lower-case symbols: nothing matches
    with pytest.raises(ValueError, match="non-numeric"):
        model.predict(None, cohort.assign(G1="high"))
    with pytest.raises(ValueError, match=r"gene 'G2' for some samples only"):
        model.predict(None, cohort.assign(G2=[np.nan] + [1.0] * (len(cohort) - 1)))
    out = model.predict(None, cohort)
    assert out.columns.tolist() == ["y_prob"] and out["y_prob"].between(0, 1).all()


def test_per_cohort_standardized_model_refuses_a_handful_of_samples(bundle) -> None:
    model_bundle, cohort = bundle
    model = IC2BertPyfunc(model_bundle.to_dict())
    with pytest.raises(ValueError, match=r"pass a whole cohort \(>= 10 samples\), got 3 row"):
        model.predict(None, cohort.head(3))
