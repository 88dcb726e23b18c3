"""Shapes, parameter counts and attention probabilities of the Haiku model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icb_kedro.models.ic2bert.config import IC2BertConfig
from icb_kedro.models.ic2bert.model import build_model, count_parameters, hash_dropout
from icb_kedro.models.ic2bert.weights import init_params


def _abstract_count(config: IC2BertConfig) -> int:
    """Parameter count without running the init (shape evaluation only)."""
    model = build_model(config)
    shapes = jax.eval_shape(
        lambda key, tokens: model.init(key, tokens, True),
        jax.random.PRNGKey(0),
        jnp.zeros((1, config.n_genes), jnp.int32),
    )
    return count_parameters(shapes)


@pytest.mark.parametrize(
    ("n_genes", "n_bins", "expected"),
    [
        # The original has 602,438 at 983 genes / 4 bins; its expression table has only
        # n_bins rows, ours n_bins + 2 (learned [MASK] and [MISSING] rows, spec item 10):
        # + 2 x 128; the MLM head's extra [MISSING] output: + 129; the final LayerNorm
        # (deliberate, see model.py): + 2 x 128.
        (983, 4, 602_438 + 2 * 128 + 129 + 2 * 128),
        (
            983,
            8,
            603_466 + 2 * 128 + 129 + 2 * 128,
        ),  # original 603,466 at 8 bins (its MLM head already has n_bins + 1 outputs)
        (
            937,
            4,
            602_438 + 2 * 128 + 129 + 2 * 128 - 46 * 64,
        ),  # the 937-gene ic2bert_prior panel: 46 fewer gene-embedding rows
    ],
)
def test_parameter_count_matches_the_spec(n_genes: int, n_bins: int, expected: int) -> None:
    for scan in (True, False):
        assert (
            _abstract_count(IC2BertConfig(n_genes=n_genes, n_bins=n_bins, scan_layers=scan))
            == expected
        )


def test_parameter_breakdown_at_paper_size() -> None:
    model = build_model(IC2BertConfig(n_genes=983))
    params = jax.eval_shape(
        lambda key, tokens: model.init(key, tokens, True),
        jax.random.PRNGKey(0),
        jnp.zeros((1, 983), jnp.int32),
    )
    size = {
        module: sum(int(np.prod(v.shape)) for v in leaves.values())
        for module, leaves in params.items()
    }
    assert size["ic2bert/embedding/expression_embedding"] == 6 * 128  # 4 bins + [MASK] + [MISSING]
    assert size["ic2bert/embedding/gene_embedding"] == 62_912
    assert size["ic2bert/embedding/gene_projection"] == 8_320
    assert sum(v for k, v in size.items() if k.startswith("ic2bert/blocks/")) == 4 * 132_480
    assert size["ic2bert/mlm_head"] == 774 and size["ic2bert/classification_head"] == 129
    assert size["ic2bert/final_ln"] == 256  # deliberate: the original has no final LayerNorm


def _jitted_apply(config):
    """model.apply, jitted (eager Haiku apply is slow); is_training / return_attention static."""
    return jax.jit(build_model(config).apply, static_argnums=(3, 4))


def test_output_shapes_and_real_attention_probabilities(tiny_config, token_data) -> None:
    tokens = jnp.asarray(token_data[0][:3])
    apply = _jitted_apply(tiny_config)
    params = init_params(tiny_config, 0)
    out = apply(params, None, tokens, False, True)
    assert out.mlm_logits.shape == (3, 12, tiny_config.vocab_size)
    assert out.cls_logit.shape == (3,) and out.pooled.shape == (3, tiny_config.d_model)
    assert len(out.attention) == tiny_config.n_layers
    for probs in out.attention:
        assert probs.shape == (3, tiny_config.n_heads, 12, 12)
        np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5)
        assert float(probs.min()) >= 0.0
    # Both attention implementations compute the same function (the default is "einsum").
    import dataclasses

    for attention in ("fused", "einsum", "chunked"):  # chunked: 5-row blocks of 12 (one padded)
        config = dataclasses.replace(tiny_config, attention=attention, attention_chunk=5)
        other = _jitted_apply(config)
        logits = other(params, None, tokens, False, False).mlm_logits
        np.testing.assert_allclose(np.asarray(logits), np.asarray(out.mlm_logits), atol=1e-4)


def test_chunked_attention_trains_the_same_model(tiny_config, token_data) -> None:
    """The chunked attention's custom backward pass gives the explicit form's gradients for
    every parameter (training mode: the same dropout masks, same seed)."""
    import dataclasses

    tokens = jnp.asarray(token_data[0][:4])
    params = init_params(tiny_config, 0)

    def gradients(attention: str):
        model = build_model(
            dataclasses.replace(tiny_config, attention=attention, attention_chunk=5)
        )

        def loss(p):
            out = model.apply(p, jax.random.PRNGKey(3), tokens, True)
            return (out.mlm_logits**2).mean() + (out.cls_logit**2).mean()

        return jax.grad(loss)(params)

    explicit, chunked = gradients("einsum"), gradients("chunked")
    flat_explicit = jax.tree_util.tree_leaves_with_path(explicit)
    flat_chunked = dict(jax.tree_util.tree_leaves_with_path(chunked))
    largest = max(float(np.abs(np.asarray(value)).max()) for _, value in flat_explicit)
    for path, value in flat_explicit:
        # The key projection's bias has a zero gradient (softmax ignores a per-row shift): both
        # are ~1e-9 noise, so the tolerance is relative to the largest gradient too.
        scale = max(float(np.abs(np.asarray(value)).max()), 1e-3 * largest)
        np.testing.assert_allclose(
            np.asarray(flat_chunked[path]),
            np.asarray(value),
            atol=1e-4 * scale,
            rtol=1e-3,
            err_msg=jax.tree_util.keystr(path),
        )


def test_mask_and_missing_tokens_have_their_own_embeddings(tiny_config) -> None:
    params = init_params(tiny_config, 0)
    table = np.asarray(params["ic2bert/embedding/expression_embedding"]["embeddings"])
    assert table.shape[0] == tiny_config.n_bins + 2
    assert not np.allclose(table[tiny_config.mask_id], table[tiny_config.n_bins - 1])
    assert not np.allclose(table[tiny_config.missing_id], table[tiny_config.mask_id])


def test_missing_genes_are_left_out_of_the_pooled_vector(tiny_config, token_data) -> None:
    """A sample with genes removed still scores, and its pooled vector averages only the
    measured genes (the [MISSING] positions carry no expression)."""
    tokens = np.asarray(token_data[0][:2]).copy()
    tokens[1, : tiny_config.n_genes // 2] = tiny_config.missing_id
    apply = _jitted_apply(tiny_config)
    params = init_params(tiny_config, 0)
    out = apply(params, None, jnp.asarray(tokens), False, False)
    assert (
        np.isfinite(np.asarray(out.pooled)).all() and np.isfinite(np.asarray(out.cls_logit)).all()
    )
    all_missing = np.full_like(tokens[:1], tiny_config.missing_id)
    pooled = np.asarray(apply(params, None, jnp.asarray(all_missing), False, False).pooled)
    np.testing.assert_array_equal(pooled, 0.0)  # nothing measured: an empty mean is 0, not NaN


def test_dropout_only_in_training_and_seeded(tiny_config, token_data) -> None:
    tokens = jnp.asarray(token_data[0][:4])
    apply = _jitted_apply(tiny_config)
    params = init_params(tiny_config, 0)
    # The pooled vector, not the head's logit: the head starts at zero weights.
    eval_a = apply(params, None, tokens, False, False).pooled
    eval_b = apply(params, jax.random.PRNGKey(5), tokens, False, False).pooled
    np.testing.assert_array_equal(np.asarray(eval_a), np.asarray(eval_b))
    train_a = apply(params, jax.random.PRNGKey(1), tokens, True, False).pooled
    train_b = apply(params, jax.random.PRNGKey(1), tokens, True, False).pooled
    train_c = apply(params, jax.random.PRNGKey(2), tokens, True, False).pooled
    np.testing.assert_array_equal(np.asarray(train_a), np.asarray(train_b))
    assert not np.allclose(np.asarray(train_a), np.asarray(train_c))


def test_hash_dropout_rate_and_scaling() -> None:
    x = jnp.ones((64, 256, 128))
    dropout = jax.jit(hash_dropout, static_argnums=1)
    kept = dropout(jax.random.PRNGKey(0), 0.1, x)
    keep_rate = float((kept > 0).mean())
    assert abs(keep_rate - 0.9) < 0.002
    np.testing.assert_allclose(float(kept.max()), 1 / 0.9, rtol=1e-6)
    other = dropout(jax.random.PRNGKey(1), 0.1, x)
    agreement = float(((kept > 0) == (other > 0)).mean())
    assert abs(agreement - (0.9**2 + 0.1**2)) < 0.003  # independent masks for different keys


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="divisible"):
        IC2BertConfig(n_genes=10, d_model=10, n_heads=4)
    with pytest.raises(ValueError, match="n_bins"):
        IC2BertConfig(n_genes=10, n_bins=1)
    with pytest.raises(ValueError, match="tokens must be"):
        build_model(IC2BertConfig(n_genes=10, d_model=8, n_heads=2)).init(
            jax.random.PRNGKey(0), jnp.zeros((1, 9), jnp.int32), False
        )
