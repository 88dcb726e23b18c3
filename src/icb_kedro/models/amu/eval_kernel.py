"""numba kernel of AMU's whole encoder in eval mode (no dropout, no gradient): inference.

Why a second kernel: the training engine (``fused``) runs one layer at a time over the whole
batch, so every layer writes and reads [B, G, 200] feed-forward activations (33 MB at batch
256) and its GEMMs have an inner dimension of 20: inference was memory traffic, 5.7x the
eager path. Here one thread takes one sample through all layers, with every intermediate in
its own cache: the state is kept feature-major ([E, G], genes contiguous), so the
projections are small GEMMs (numpy ``dot`` -> BLAS, one thread each) and everything between
them - bias, attention, ReLU, residual LayerNorm - is a loop over genes that vectorises
without any cross-lane reduction (``EXACT_ORDER``: the sums' order is fixed, so results do
not depend on the thread count). Attention per head is the training kernel's two passes
(row maxima, then exp, sum and values) with one query row per SIMD lane.

Numerics equal the layer-by-layer engine and Paddle's eager layers to float32 rounding
(tested to 1e-5 on the logits); the summation order of the GEMMs differs, so outputs are not
bit-identical to the training engine's eval mode (~1e-6).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .attention_kernels import EXACT_ORDER, exp_nonpositive


@njit(inline="always", fastmath=EXACT_ORDER)
def residual_layer_norm_columns(x, y, gamma, beta, eps, out):
    """out[:, g] = LayerNorm over the rows of (x + y)[:, g]; x, y, out [E, G]."""
    E, G = x.shape
    mean = np.zeros(G, np.float32)
    for c in range(E):
        for g in range(G):
            total = x[c, g] + y[c, g]
            out[c, g] = total
            mean[g] += total
    for g in range(G):
        mean[g] /= E
    inv_std = np.zeros(G, np.float32)
    for c in range(E):
        for g in range(G):
            centred = out[c, g] - mean[g]
            inv_std[g] += centred * centred
    for g in range(G):
        inv_std[g] = np.float32(1.0) / np.sqrt(inv_std[g] / E + eps)
    for c in range(E):
        for g in range(G):
            out[c, g] = (out[c, g] - mean[g]) * inv_std[g] * gamma[c] + beta[c]


@njit(inline="always", fastmath=EXACT_ORDER)
def add_row_bias(x, bias):
    """x[o, :] += bias[o] on [O, G]."""
    for o in range(x.shape[0]):
        for g in range(x.shape[1]):
            x[o, g] += bias[o]


@njit(inline="always", fastmath=EXACT_ORDER)
def self_attention_columns(qkv, n_heads, scale, out, scores, queries, row_max, total, weight):
    """softmax(scale q kᵀ) v per head, from qkv [3E, G] (q, k, v stacked by rows) into out
    [E, G]; the other arguments are scratch ([G, G], [D, G], three [G])."""
    E, G = out.shape
    D = E // n_heads
    for h in range(n_heads):
        for d in range(D):
            for r in range(G):
                queries[d, r] = qkv[h * D + d, r] * scale
        row_max[:] = np.float32(-3.0e38)
        for j in range(G):  # pass 1: the scores of key j for every query row, and row maxima
            key = qkv[E + h * D, j]
            for r in range(G):
                scores[j, r] = queries[0, r] * key
            for d in range(1, D):
                key = qkv[E + h * D + d, j]
                for r in range(G):
                    scores[j, r] += queries[d, r] * key
            for r in range(G):
                row_max[r] = max(row_max[r], scores[j, r])
        total[:] = np.float32(0.0)
        for d in range(D):
            out[h * D + d, :] = np.float32(0.0)
        for j in range(G):  # pass 2: unnormalised probabilities times the values
            for r in range(G):
                e = exp_nonpositive(scores[j, r] - row_max[r])
                total[r] += e
                weight[r] = e
            for d in range(D):
                value = qkv[2 * E + h * D + d, j]
                row = out[h * D + d]
                for r in range(G):
                    row[r] += weight[r] * value
        for d in range(D):
            for r in range(G):
                out[h * D + d, r] /= total[r]


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def encoder_forward_eval(
    x, w_qkv, b_qkv, w_out, b_out, w_ffn1, b_ffn1, w_ffn2, b_ffn2, g1, be1, g2, be2, n_heads, eps
):
    """Paddle's post-LN TransformerEncoder (ReLU FFN, no final norm) in eval mode: x [B, G, E]
    -> [B, G, E].

    Weights are stacked over the L layers and transposed to act on feature-major columns:
    w_qkv [L, 3E, E] (q, k, v), w_out [L, E, E], w_ffn1 [L, F, E], w_ffn2 [L, E, F]; biases
    and LayerNorm weights [L, ·] (:func:`icb_kedro.models.amu.fused.stacked_eval_weights`).
    """
    B, G, E = x.shape
    n_layers = w_qkv.shape[0]
    F = w_ffn1.shape[1]
    D = E // n_heads
    scale = np.float32(1.0 / np.sqrt(np.float32(D)))
    result = np.empty_like(x)
    for b in prange(B):
        state = np.ascontiguousarray(x[b].T)  # [E, G]
        qkv = np.empty((3 * E, G), np.float32)
        attended = np.empty((E, G), np.float32)
        projected = np.empty((E, G), np.float32)
        middle = np.empty((E, G), np.float32)
        hidden = np.empty((F, G), np.float32)
        ffn = np.empty((E, G), np.float32)
        scores = np.empty((G, G), np.float32)  # [key j, query row r]
        queries = np.empty((D, G), np.float32)
        row_max = np.empty(G, np.float32)
        total = np.empty(G, np.float32)
        weight = np.empty(G, np.float32)
        for layer in range(n_layers):
            np.dot(w_qkv[layer], state, qkv)
            add_row_bias(qkv, b_qkv[layer])
            self_attention_columns(
                qkv, n_heads, scale, attended, scores, queries, row_max, total, weight
            )
            np.dot(w_out[layer], attended, projected)
            add_row_bias(projected, b_out[layer])
            residual_layer_norm_columns(state, projected, g1[layer], be1[layer], eps, middle)
            np.dot(w_ffn1[layer], middle, hidden)
            bias = b_ffn1[layer]
            for f in range(F):
                for g in range(G):
                    hidden[f, g] = max(hidden[f, g] + bias[f], np.float32(0.0))
            np.dot(w_ffn2[layer], hidden, ffn)
            add_row_bias(ffn, b_ffn2[layer])
            residual_layer_norm_columns(middle, ffn, g2[layer], be2[layer], eps, state)
        result[b] = state.T
    return result
