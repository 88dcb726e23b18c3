"""Memory-light softmax attention for the CPU: query chunks, recomputation in the backward pass.

Why: at the paper's size (983 genes, 4 heads) the explicit ``softmax(QK^T)V`` materialises
[B, H, L, L] float32 tensors (31 MB per micro-batch of 2 and layer) several times in the
forward pass and again in its autodiff, and keeps the probabilities as residuals: measured,
the attention core was 3.3 s of a 4.4 s pretraining step, almost all of it passes over those
tensors rather than arithmetic. Here a ``lax.map`` over blocks of ``chunk`` query rows keeps
each block's [B, H, chunk, L] scores small, and a ``custom_vjp`` keeps only the output and
each row's log-sum-exp: the backward pass recomputes a block's probabilities from them and
takes the softmax's row term from the output, D_i = dO_i . O_i (FlashAttention-2, Dao 2023),
so it is one pass over each block (dV, dP, dS, dQ, dK), with no stored [B, H, L, L] tensor.

The same function as ``jax.nn.softmax(q k^T * scale) v`` up to float32 rounding (tested,
values and gradients). No attention dropout (the model has none).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["chunked_attention"]


def _blocks(x: jax.Array, chunk: int) -> jax.Array:
    """[B, H, L, K] -> [n, B, H, chunk, K]: query rows in blocks (the last padded with zeros)."""
    batch, heads, length, width = x.shape
    pad = (-length) % chunk
    x = jnp.pad(x, ((0, 0), (0, 0), (0, pad), (0, 0)))
    return x.reshape(batch, heads, (length + pad) // chunk, chunk, width).transpose(2, 0, 1, 3, 4)


def _unblock(x: jax.Array, length: int) -> jax.Array:
    """Inverse of :func:`_blocks` (padding rows dropped)."""
    n, batch, heads, chunk, width = x.shape
    return x.transpose(1, 2, 0, 3, 4).reshape(batch, heads, n * chunk, width)[:, :, :length]


def block_rows(length: int, chunk: int) -> int:
    """Query rows per block: at most ``chunk``, spread evenly so the padding stays under one row
    per block (983 rows, chunk 256: 4 blocks of 246, not 4 of 256 with 41 padded rows)."""
    n_blocks = -(-length // max(1, chunk))
    return -(-length // n_blocks)


def _matmul(spec: str, a: jax.Array, b: jax.Array, dtype: str) -> jax.Array:
    """einsum with inputs in ``dtype`` and float32 accumulation (as the model's CastLinear)."""
    dt = jnp.dtype(dtype)
    return jnp.einsum(spec, a.astype(dt), b.astype(dt), preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def chunked_attention(
    q: jax.Array, k: jax.Array, v: jax.Array, scale: float, chunk: int, dtype: str = "float32"
) -> jax.Array:
    """softmax(scale q k^T) v for q, k, v [B, H, L, K] -> [B, H, L, K], at most ``chunk`` query
    rows at a time (:func:`block_rows`)."""
    return _forward(q, k, v, scale, chunk, dtype)[0]


def _forward(q, k, v, scale, chunk, dtype):
    chunk = block_rows(q.shape[2], chunk)

    def block(q_block):
        scores = _matmul("bhqk,bhmk->bhqm", q_block * scale, k, dtype)  # [B, H, chunk, L]
        row_max = scores.max(axis=-1)
        weights = jnp.exp(scores - row_max[..., None])
        total = weights.sum(axis=-1)
        out = _matmul("bhqm,bhmk->bhqk", weights, v, dtype) / total[..., None]
        return out, row_max + jnp.log(total)

    out, lse = jax.lax.map(block, _blocks(q, chunk))
    length = q.shape[2]
    return _unblock(out, length), _unblock(lse[..., None], length)[..., 0]


def _forward_with_residuals(q, k, v, scale, chunk, dtype):
    out, lse = _forward(q, k, v, scale, chunk, dtype)
    return out, (q, k, v, out, lse)


def _backward(scale, chunk, dtype, residuals, d_out):
    q, k, v, out, lse = residuals
    chunk = block_rows(q.shape[2], chunk)
    row_term = (d_out * out).sum(axis=-1)  # D_i = dO_i . O_i = sum_j P_ij dP_ij

    def block(carry, xs):
        dk, dv = carry
        q_block, d_out_block, lse_block, row_block = xs
        scores = _matmul("bhqk,bhmk->bhqm", q_block * scale, k, dtype)
        probs = jnp.exp(scores - lse_block[..., None])  # [B, H, chunk, L]
        dv = dv + _matmul("bhqm,bhqk->bhmk", probs, d_out_block, dtype)
        d_probs = _matmul("bhqk,bhmk->bhqm", d_out_block, v, dtype)
        d_scores = probs * (d_probs - row_block[..., None]) * scale
        dq_block = _matmul("bhqm,bhmk->bhqk", d_scores, k, dtype)
        dk = dk + _matmul("bhqm,bhqk->bhmk", d_scores, q_block, dtype)
        return (dk, dv), dq_block

    xs = (
        _blocks(q, chunk),
        _blocks(d_out, chunk),  # zero on padding rows: they add nothing to dK, dV
        _blocks(lse[..., None], chunk)[..., 0],
        _blocks(row_term[..., None], chunk)[..., 0],
    )
    (dk, dv), dq = jax.lax.scan(block, (jnp.zeros_like(k), jnp.zeros_like(v)), xs)
    return _unblock(dq, q.shape[2]), dk, dv


chunked_attention.defvjp(_forward_with_residuals, _backward)
