"""Model bundles: save -> load -> identical predictions; bundle validation."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.ic2bert.checkpoint import ModelBundle, fingerprint
from icb_kedro.models.ic2bert.predict import predict_proba, received_attention, score_frame
from icb_kedro.models.ic2bert.tokenizer import fit_quantile_bins
from icb_kedro.models.ic2bert.weights import init_params


def _bundle(tiny_config) -> tuple[ModelBundle, pd.DataFrame]:
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(tiny_config.n_genes)]
    expression = pd.DataFrame(rng.normal(size=(30, len(genes))), columns=genes)
    bins = fit_quantile_bins(expression, genes, tiny_config.n_bins)
    return ModelBundle(
        tiny_config, init_params(tiny_config, 3), bins, {"held_out": "X"}
    ), expression


def test_save_load_gives_identical_predictions(tmp_path, tiny_config) -> None:
    bundle, expression = _bundle(tiny_config)
    before = score_frame(bundle, expression)
    path = tmp_path / "bundle.pkl"
    path.write_bytes(pickle.dumps(bundle.to_dict()))
    restored = ModelBundle.from_dict(pickle.loads(path.read_bytes()))
    np.testing.assert_array_equal(score_frame(restored, expression), before)
    np.testing.assert_array_equal(restored.tokenizer.edges, bundle.tokenizer.edges)
    assert restored.config == bundle.config and restored.genes == bundle.genes


def test_bundle_refuses_mismatched_tokenizer(tiny_config) -> None:
    bundle, _ = _bundle(tiny_config)
    values = bundle.to_dict()
    values["config"]["n_genes"] = tiny_config.n_genes + 1
    with pytest.raises(ValueError, match="bundle mismatch"):
        ModelBundle.from_dict(values)
    with pytest.raises(ValueError, match="missing"):
        ModelBundle.from_dict({"config": {}})


def test_attention_importance_is_a_distribution_over_genes(tiny_config) -> None:
    bundle, expression = _bundle(tiny_config)
    from icb_kedro.models.ic2bert.tokenizer import tokenize

    received = received_attention(
        tiny_config, bundle.params, tokenize(bundle.tokenizer, expression)
    )
    assert received.shape == (30, tiny_config.n_genes)  # raw: one row per sample
    # Every row is a mean of softmax rows: non-negative and summing to 1 over the genes.
    assert received.min() >= 0 and np.allclose(received.sum(axis=1), 1.0, atol=1e-5)
    probs = predict_proba(
        tiny_config, bundle.params, tokenize(bundle.tokenizer, expression), batch_size=7
    )  # padding path
    assert probs.shape == (30,) and ((probs > 0) & (probs < 1)).all()


def test_fingerprint_is_stable_and_sensitive() -> None:
    a = fingerprint({"x": 1}, np.arange(3))
    assert a == fingerprint({"x": 1}, np.arange(3))
    assert a != fingerprint({"x": 2}, np.arange(3)) and a != fingerprint({"x": 1}, np.arange(4))
