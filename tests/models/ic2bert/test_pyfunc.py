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
    cohort = pd.DataFrame(  # log2(TPM+1): never negative (the models refuse other scales)
        np.abs(rng.normal(5, 2, size=(25, len(genes)))),
        columns=genes,
        index=[f"s{i}" for i in range(25)],
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
    # Another scale than log2(TPM+1): the shared files' log2(TPM+0.001), z-scores, raw TPM, or
    # in-range values whose TPM cannot be a sample's (12 genes at 2**19 TPM each).
    for wrong in (np.log2(np.exp2(cohort) - 1 + 0.001), (cohort - cohort.mean()) / cohort.std()):
        with pytest.raises(ValueError, match=r"IC2Bert expects log2\(TPM\+1\), in \[0, 19.93\]"):
            model.predict(None, wrong)
    with pytest.raises(ValueError, match=r"in \[0, 19.93\]: \d+ value\(s\) are outside, e.g."):
        model.predict(None, np.exp2(cohort) - 1)
    with pytest.raises(ValueError, match=r"TPM of 25 sample\(s\) sum above 1e6"):
        model.predict(None, cohort * 0 + 19.0)
    out = model.predict(None, cohort)
    assert out.columns.tolist() == ["y_prob"] and out["y_prob"].between(0, 1).all()


def test_per_cohort_standardized_model_refuses_a_handful_of_samples(bundle) -> None:
    model_bundle, cohort = bundle
    model = IC2BertPyfunc(model_bundle.to_dict())
    with pytest.raises(ValueError, match=r"pass a whole cohort \(>= 10 samples\), got 3 row"):
        model.predict(None, cohort.head(3))


# Where the project is not installed: load models of two families in one process and score.
LOAD_TWO_FAMILIES = """
import importlib.util, sys
assert importlib.util.find_spec("icb_kedro") is None
import mlflow, pandas as pd
cohort = pd.read_parquet(sys.argv[1])
for uri in sys.argv[2:]:
    print(uri, mlflow.pyfunc.load_model(uri).predict(cohort)["y_prob"].round(6).tolist())
"""


def test_models_of_two_families_load_in_one_process_without_the_project(
    tmp_path, monkeypatch, bundle, model_free_env
) -> None:
    """A user scores a cohort with the IC2Bert and the baseline model in one script: each
    model carries a partial copy of icb_kedro, and the first one loaded stays imported, so
    every copy must hold every family's code (the second load failed with
    ``No module named 'icb_kedro.models.baselines'``)."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from icb_kedro.models.baselines.pyfunc import BaselinePyfunc
    from icb_kedro.models.baselines.pyfunc import log_model as log_baseline

    model_bundle, cohort = bundle
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    genes = list(model_bundle.genes)
    rng = np.random.default_rng(0)
    fitted = LogisticRegression().fit(rng.normal(size=(30, len(genes))), np.arange(30) % 2)
    baseline = BaselinePyfunc(fitted, genes, {"family": "logreg"})
    try:
        with mlflow.start_run():
            log_model(model_bundle.to_dict(), name="ic2bert", registered_model_name="icb_a")
            log_baseline(baseline, name="baseline", registered_model_name="icb_b")
    finally:
        mlflow.set_tracking_uri(None)
    cohort.to_parquet(tmp_path / "cohort.parquet")
    expected = {
        "models:/icb_a/1": IC2BertPyfunc(model_bundle.to_dict()).predict(None, cohort),
        "models:/icb_b/1": baseline.predict(None, cohort),
    }
    for order in (list(expected), list(expected)[::-1]):
        done = model_free_env.run(
            LOAD_TWO_FAMILIES,
            str(tmp_path / "cohort.parquet"),
            *order,
            tracking_uri=uri,
            cwd=tmp_path,
        )
        scored = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
        for model_uri, frame in expected.items():
            np.testing.assert_allclose(eval(scored[model_uri]), frame["y_prob"], atol=1e-6)
