"""The chunked attention (``models.ic2bert.attention``) is softmax(q k^T * scale) v: values and
gradients equal the explicit form's, for any block size (padded last block included)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icb_kedro.models.ic2bert.attention import block_rows, chunked_attention


def _explicit(q, k, v, scale):
    probs = jax.nn.softmax(jnp.einsum("bhqk,bhmk->bhqm", q * scale, k), axis=-1)
    return jnp.einsum("bhqm,bhmk->bhqk", probs, v)


@pytest.mark.parametrize("chunk", [1, 7, 16, 40, 64])
def test_values_and_gradients_equal_the_explicit_softmax(chunk: int) -> None:
    rng = np.random.default_rng(chunk)
    q, k, v, weights = (
        jnp.asarray(rng.normal(size=(2, 3, 40, 8)) * 2, jnp.float32) for _ in range(4)
    )
    scale = 8**-0.5
    np.testing.assert_allclose(
        chunked_attention(q, k, v, scale, chunk), _explicit(q, k, v, scale), atol=2e-6, rtol=1e-5
    )

    def loss(attention):
        return lambda q_, k_, v_: (attention(q_, k_, v_) * weights).sum()

    expected = jax.grad(loss(lambda *a: _explicit(*a, scale)), argnums=(0, 1, 2))(q, k, v)
    got = jax.grad(loss(lambda *a: chunked_attention(*a, scale, chunk)), argnums=(0, 1, 2))(q, k, v)
    for name, e, g in zip("qkv", expected, got, strict=True):
        np.testing.assert_allclose(g, e, atol=2e-5, rtol=1e-4, err_msg=f"d{name}")


def test_it_jits_and_keeps_no_quadratic_residual() -> None:
    """Under jit and grad, the residuals are q, k, v, the output and the log-sum-exp: nothing
    of size L x L is saved for the backward pass."""
    q = k = v = jnp.ones((1, 2, 300, 4), jnp.float32)
    _, residuals = jax.vjp(lambda a, b, c: chunked_attention(a, b, c, 0.5, 64), q, k, v)
    sizes = [leaf.size for leaf in jax.tree_util.tree_leaves(residuals)]
    assert max(sizes) <= q.size
    fn = jax.jit(jax.grad(lambda a: chunked_attention(a, k, v, 0.5, 64).sum()))
    assert np.isfinite(np.asarray(fn(q))).all()


def test_blocks_are_even_and_never_longer_than_the_sequence() -> None:
    assert block_rows(983, 256) == 246  # 4 blocks, 1 padded row, not 4 x 256 (41 padded)
    assert block_rows(100, 256) == 100  # a short panel: one block of its own length
    assert block_rows(300, 256) == 150
    assert block_rows(256, 256) == 256 and block_rows(40, 7) == 7
