"""numba kernels of AMU's fused encoder (see :mod:`icb_kedro.models.amu.fused` for the why).

Imported only by the fused path, so the eager path never needs numba. Compiled on first
use and cached on disk (``cache=True``) so later processes load machine code.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

_UINT32_RANGE = 4294967296.0

# fastmath without "reassoc": LLVM may not reorder a floating-point sum, so every result is a
# fixed function of the inputs. With full fastmath two runs on 2 threads differed by ~4e-7:
# whether a reduction took its vector or its scalar path depended on where the thread's
# buffers lay. Speed comes from the layout instead. Both passes hold a block of query rows
# "key-major" ([key j, row r]), so every inner loop runs across rows, elementwise, and nothing
# reduces across a SIMD register; the backward pass's sums over rows (dK, dV) are one small
# GEMM per block, and its softmax row term comes from the forward output (no reduction).
EXACT_ORDER = {"nnan", "ninf", "nsz", "arcp", "contract", "afn"}


@njit(inline="always", fastmath=EXACT_ORDER)
def exp_reduced(s):
    """(p, n) with exp(s) = p * 2**n for s <= 0 (clamped at -87), float32 and int32.

    Cody-Waite reduction s = n ln2 + f with |f| <= ln2/2 and a degree-6 Taylor polynomial
    for e**f (relative error < 4e-6 down to exp(-87)).
    """
    x = max(s, np.float32(-87.0))
    n = np.int32(x * np.float32(1.4426950408889634) - np.float32(0.5))
    nf = np.float32(n)
    f = x - nf * np.float32(0.693359375) + nf * np.float32(2.12194440e-4)
    p = np.float32(1.0 / 720.0)
    p = p * f + np.float32(1.0 / 120.0)
    p = p * f + np.float32(1.0 / 24.0)
    p = p * f + np.float32(1.0 / 6.0)
    p = p * f + np.float32(0.5)
    p = p * f + np.float32(1.0)
    p = p * f + np.float32(1.0)
    return p, n


@njit(inline="always", fastmath=EXACT_ORDER)
def exp_parts(s, mantissa, exponent_bits, shift):
    """exp(s[j] - shift) = mantissa[j] * 2**n[j] for s[j] <= shift (:func:`exp_reduced`);
    2**n is returned as float32 exponent bits in an int32 row that the caller views as
    float32, which keeps the training kernels' loops vectorisable.
    """
    for j in range(s.size):
        p, n = exp_reduced(s[j] - shift)
        mantissa[j] = p
        exponent_bits[j] = (n + np.int32(127)) << np.int32(23)


@intrinsic
def bits_as_float32(typingctx, bits):
    """The float32 whose bit pattern is the int32 ``bits`` (an LLVM bitcast: numba has no
    scalar view)."""
    signature = types.float32(types.int32)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return signature, codegen


@njit(inline="always", fastmath=EXACT_ORDER)
def exp_nonpositive(s):
    """exp(s) for s <= 0 as one scalar expression (:func:`exp_reduced`), so a loop that
    uses it stays one vectorised loop (the eval-mode kernel)."""
    p, n = exp_reduced(s)
    return p * bits_as_float32((n + np.int32(127)) << np.int32(23))


def attention_block(n_tokens: int) -> int:
    """Query rows per forward block: all of them, padded to 16 (one AVX-512 float32 register), at
    most 256.

    Long blocks amortise the per-key loop overhead (measured at 160 genes: 16 rows 9.4 ms,
    160 rows 3.4 ms per layer and batch of 32).
    """
    return int(min(256, -(-max(int(n_tokens), 1) // 16) * 16))


@njit(inline="always")
def keep_bits(key, counter):
    """lowbias32 (C. Wellons) of counter ^ key: a uniform uint32 per (call, element).

    numba widens uint32 arithmetic to 64 bits, so every step is truncated back to uint32
    explicitly (without it the products never wrap and almost nothing is dropped; tested).
    """
    x = np.uint32(np.uint32(counter) ^ np.uint32(key))
    x = np.uint32(x ^ (x >> np.uint32(16)))
    x = np.uint32(x * np.uint32(0x7FEB352D))
    x = np.uint32(x ^ (x >> np.uint32(15)))
    x = np.uint32(x * np.uint32(0x846CA68B))
    x = np.uint32(x ^ (x >> np.uint32(16)))
    return x


@njit(inline="always")
def drop_threshold(p_drop):
    """Elements whose hash is below this are dropped: P(drop) = p_drop to 2**-32."""
    return np.uint32(min(p_drop * _UINT32_RANGE, _UINT32_RANGE - 1.0))


@njit(inline="always", fastmath=EXACT_ORDER)
def load_block(x, b, i0, h, G, scale, out):
    """out[d, r] = scale * x[b, i0 + r, h, d]; rows past G are zero (computed, never stored)."""
    nb = out.shape[1]
    D = x.shape[3]
    for d in range(D):
        for r in range(nb):
            out[d, r] = x[b, i0 + r, h, d] * scale if i0 + r < G else np.float32(0.0)


@njit(inline="always", fastmath=EXACT_ORDER)
def block_scores(qs, k, b, j, h, out):
    """out[r] = sum_d qs[d, r] * k[b, j, h, d] (the scores of key j for the block's rows)."""
    nb = out.size
    D = qs.shape[0]
    kd = k[b, j, h, 0]
    for r in range(nb):
        out[r] = qs[0, r] * kd
    for d in range(1, D):
        kd = k[b, j, h, d]
        for r in range(nb):
            out[r] += qs[d, r] * kd


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def attention_forward(q, k, v, scale, p_drop, key, block):
    """softmax(scale q kᵀ) with inverted dropout, times v; q, k, v [B, G, H, D] -> out [B, G, H, D].

    Also returns each row's log-sum-exp [B, H, G] and the dropout mask (1 = kept, uint8
    [B * H, blocks, G keys, block rows]; empty without dropout) for the backward pass: one
    byte per probability (8 MB per layer at batch 32 and 160 genes) instead of hashing every
    element again there. Paddle's layout before its head transpose, so no transpose is needed
    on either side. ``block`` query rows are processed at once (:func:`attention_block`);
    results do not depend on it (tested).
    """
    B, G, H, D = q.shape
    out = np.empty((B, G, H, D), np.float32)
    lse = np.empty((B, H, G), np.float32)
    threshold = drop_threshold(p_drop)
    keep_scale = np.float32(1.0 / (1.0 - p_drop))
    dropping = p_drop > 0
    nb = block
    n_blocks = -(-G // block)
    if dropping:
        mask = np.empty((B * H, n_blocks, G, block), np.uint8)
    else:
        mask = np.empty((0, 0, 0, 0), np.uint8)
    for bh in prange(B * H):
        b = bh // H
        h = bh - b * H
        scores = np.empty((G, block), np.float32)  # [key j, row r]
        qs = np.empty((D, block), np.float32)
        acc = np.empty((D, block), np.float32)
        row_max = np.empty(block, np.float32)
        total = np.empty(block, np.float32)
        shifted = np.empty(block, np.float32)
        mantissa = np.empty(block, np.float32)
        exponent_bits = np.empty(block, np.int32)
        two_pow = exponent_bits.view(np.float32)
        for i0 in range(0, G, block):
            load_block(q, b, i0, h, G, scale, qs)
            row_max[:] = np.float32(-3.0e38)
            for j in range(G):
                block_scores(qs, k, b, j, h, scores[j])
                for r in range(nb):
                    row_max[r] = max(row_max[r], scores[j, r])
            total[:] = np.float32(0.0)
            acc[:] = np.float32(0.0)
            for j in range(G):
                for r in range(nb):
                    shifted[r] = scores[j, r] - row_max[r]
                exp_parts(shifted, mantissa, exponent_bits, np.float32(0.0))
                for r in range(nb):
                    e = mantissa[r] * two_pow[r]
                    total[r] += e
                    shifted[r] = e
                if dropping:
                    base = np.uint32((bh * G + i0) * G + j)
                    kept = mask[bh, i0 // block, j]
                    for r in range(nb):
                        kept[r] = keep_bits(key, base + np.uint32(r * G)) >= threshold
                    for r in range(nb):
                        shifted[r] *= keep_scale * np.float32(kept[r])
                for d in range(D):
                    vd = v[b, j, h, d]
                    for r in range(nb):
                        acc[d, r] += shifted[r] * vd
            for r in range(min(block, G - i0)):
                lse[b, h, i0 + r] = row_max[r] + np.log(total[r])
                inv = np.float32(1.0) / total[r]
                for d in range(D):
                    out[b, i0 + r, h, d] = acc[d, r] * inv
    return out, lse, mask


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def attention_backward(q, k, v, out, lse, mask, dout, scale, p_drop, block):
    """dq, dk, dv of :func:`attention_forward`, given its output, log-sum-exps and dropout mask.

    One pass over the keys per block of query rows: the softmax's row term
    D_i = sum_j P_ij dP_ij equals dO_i . O_i (FlashAttention-2, Dao 2023: dropout included,
    since O_i = sum_j P_ij m_ij V_j and dP_ij = m_ij dO_i . V_j), so it is known before the
    keys are visited and the score gradients need neither a second pass nor a stored row of
    probabilities. Probabilities are recomputed from the log-sum-exp; the dropout mask is
    the forward pass's.
    """
    B, G, H, D = q.shape
    dq = np.empty_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    keep_scale = np.float32(1.0 / (1.0 - p_drop))
    dropping = p_drop > 0
    nb = block
    for bh in prange(B * H):
        b = bh // H
        h = bh - b * H
        dscores = np.empty((G, block), np.float32)  # d score [key j, row r]
        weights = np.empty((G, block), np.float32)  # dropped probabilities
        qs = np.empty((D, block), np.float32)
        qraw = np.empty((D, block), np.float32)
        grad_out = np.empty((D, block), np.float32)
        acc = np.empty((D, block), np.float32)
        row_lse = np.empty(block, np.float32)
        row_dot = np.empty(block, np.float32)
        probs = np.empty(block, np.float32)
        shifted = np.empty(block, np.float32)
        mantissa = np.empty(block, np.float32)
        exponent_bits = np.empty(block, np.int32)
        two_pow = exponent_bits.view(np.float32)
        dk_sum = np.zeros((G, D), np.float32)
        dv_sum = np.zeros((G, D), np.float32)
        for i0 in range(0, G, block):
            load_block(q, b, i0, h, G, scale, qs)
            load_block(q, b, i0, h, G, np.float32(1.0), qraw)
            load_block(dout, b, i0, h, G, np.float32(1.0), grad_out)  # zero past G: no contribution
            for r in range(nb):
                row_lse[r] = lse[b, h, i0 + r] if i0 + r < G else np.float32(0.0)
            load_block(out, b, i0, h, G, np.float32(1.0), acc)
            for r in range(nb):
                row_dot[r] = grad_out[0, r] * acc[0, r]
            for d in range(1, D):
                for r in range(nb):
                    row_dot[r] += grad_out[d, r] * acc[d, r]
            acc[:] = np.float32(0.0)
            for j in range(G):
                block_scores(qs, k, b, j, h, shifted)
                for r in range(nb):
                    shifted[r] -= row_lse[r]
                exp_parts(shifted, mantissa, exponent_bits, np.float32(0.0))
                for r in range(nb):
                    probs[r] = mantissa[r] * two_pow[r]
                block_scores(grad_out, v, b, j, h, shifted)  # d(dropped probability) = dout . v[j]
                if dropping:
                    keep = mask[bh, i0 // block, j]
                    for r in range(nb):
                        kept = keep_scale * np.float32(keep[r])
                        shifted[r] *= kept
                        weights[j, r] = probs[r] * kept
                else:
                    for r in range(nb):
                        weights[j, r] = probs[r]
                for r in range(nb):
                    dscores[j, r] = probs[r] * (shifted[r] - row_dot[r]) * scale
                for d in range(D):
                    kd = k[b, j, h, d]
                    for r in range(nb):
                        acc[d, r] += dscores[j, r] * kd
            for r in range(min(block, G - i0)):
                for d in range(D):
                    dq[b, i0 + r, h, d] = acc[d, r]
            dk_sum += np.dot(dscores, qraw.T)  # sum over the block's rows: one small GEMM each
            dv_sum += np.dot(weights, grad_out.T)
        for j in range(G):
            for d in range(D):
                dk[b, j, h, d] = dk_sum[j, d]
                dv[b, j, h, d] = dv_sum[j, d]
    return dq, dk, dv


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def dropout_mask(n, p_drop, key):
    """Flat float32 inverted-dropout mask: 1/(1-p) where kept, 0 where dropped."""
    out = np.empty(n, np.float32)
    threshold = drop_threshold(p_drop)
    keep_scale = np.float32(1.0 / (1.0 - p_drop))
    for j in prange(n):
        keep = keep_bits(key, np.uint32(j)) >= threshold
        out[j] = keep_scale if keep else np.float32(0.0)
    return out


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def residual_layer_norm_forward(x, y, p_drop, key, gamma, beta, eps):
    """LayerNorm(x + dropout(y)) over rows of [N, E]; returns out, normalised rows, 1/std per
    row."""
    N, E = x.shape
    out = np.empty_like(x)
    normed = np.empty_like(x)
    rstd = np.empty(N, np.float32)
    threshold = drop_threshold(p_drop)
    keep_scale = np.float32(1.0 / (1.0 - p_drop))
    dropping = p_drop > 0
    for r in prange(N):
        total = np.float32(0.0)
        for c in range(E):
            value = y[r, c]
            if dropping:
                keep = keep_bits(key, np.uint32(r * E + c)) >= threshold
                value = value * keep_scale if keep else np.float32(0.0)
            value += x[r, c]
            normed[r, c] = value
            total += value
        mean = total / E
        sq = np.float32(0.0)
        for c in range(E):
            centred = normed[r, c] - mean
            sq += centred * centred
        inv = np.float32(1.0) / np.sqrt(sq / E + eps)
        rstd[r] = inv
        for c in range(E):
            n = (normed[r, c] - mean) * inv
            normed[r, c] = n
            out[r, c] = n * gamma[c] + beta[c]
    return out, normed, rstd


# Row chunks of a column sum: a fixed split, so the sum's order (and every bit of it) does not
# depend on the thread count.
SUM_CHUNKS = 64


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def residual_layer_norm_backward(dout, normed, rstd, gamma, p_drop, key):
    """Gradients of :func:`residual_layer_norm_forward`: w.r.t. x and y, and the column sums
    the parameters need, in the same pass: dgamma, dbeta and the sum of dy over rows (the bias
    gradient of the sublayer that produced y). Sums go by fixed row chunks (:data:`SUM_CHUNKS`).
    """
    N, E = dout.shape
    dx = np.empty_like(dout)
    dy = np.empty_like(dout)
    threshold = drop_threshold(p_drop)
    keep_scale = np.float32(1.0 / (1.0 - p_drop))
    dropping = p_drop > 0
    size = -(-N // SUM_CHUNKS)
    partial = np.zeros((SUM_CHUNKS, 3, E), np.float32)  # dgamma, dbeta, sum of dy
    for chunk in prange(SUM_CHUNKS):
        sums = partial[chunk]
        for r in range(chunk * size, min(N, (chunk + 1) * size)):
            mean_d = np.float32(0.0)
            mean_dn = np.float32(0.0)
            for c in range(E):
                dn = dout[r, c] * gamma[c]
                mean_d += dn
                mean_dn += dn * normed[r, c]
            mean_d /= E
            mean_dn /= E
            for c in range(E):
                dx[r, c] = rstd[r] * (dout[r, c] * gamma[c] - mean_d - normed[r, c] * mean_dn)
            if dropping:
                for c in range(E):
                    keep = keep_bits(key, np.uint32(r * E + c)) >= threshold
                    dy[r, c] = dx[r, c] * keep_scale if keep else np.float32(0.0)
            else:
                dy[r] = dx[r]
            for c in range(E):
                sums[0, c] += dout[r, c] * normed[r, c]
                sums[1, c] += dout[r, c]
                sums[2, c] += dy[r, c]
    totals = np.zeros((3, E), np.float32)
    for chunk in range(SUM_CHUNKS):
        totals += partial[chunk]
    return dx, dy, totals[0], totals[1], totals[2]


# Rows per block of the feed-forward and projection kernels: a [128, 200] hidden block stays in
# L2 between its GEMMs instead of a [B * G, 200] array going to memory and back after each one.
ROW_BLOCK = 128


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def ffn_forward(x, w1, b1, w2, b2, p_drop, key):
    """Paddle's feed-forward sublayer on rows of x [N, E]: hidden = dropout(relu(x w1 + b1)),
    out = hidden w2 + b2; returns (hidden, out).

    One row block (:data:`ROW_BLOCK`) per task, both GEMMs inside it (numba's np.dot: BLAS on
    the calling thread), so both cores run GEMMs and the [N, F] hidden activation is written
    once. A unit's gradient passes (times 1/(1-p)) exactly where its output is positive,
    active and kept, so the backward pass needs no stored gate (:func:`ffn_backward`).
    """
    N, E = x.shape
    F = w1.shape[1]
    hidden = np.empty((N, F), np.float32)
    out = np.empty((N, E), np.float32)
    threshold = drop_threshold(p_drop)
    keep_scale = np.float32(1.0 / (1.0 - p_drop))
    dropping = p_drop > 0
    for block in prange(-(-N // ROW_BLOCK)):
        r0 = block * ROW_BLOCK
        r1 = min(N, r0 + ROW_BLOCK)
        pre = np.dot(x[r0:r1], w1)
        for i in range(r1 - r0):
            base = np.uint32((r0 + i) * F)
            for c in range(F):
                value = pre[i, c] + b1[c]
                g = np.float32(1.0) if value > 0 else np.float32(0.0)
                if dropping:
                    keep = keep_bits(key, base + np.uint32(c)) >= threshold
                    g = g * keep_scale if keep else np.float32(0.0)
                pre[i, c] = value * g
        hidden[r0:r1] = pre
        projected = np.dot(pre, w2)
        for i in range(r1 - r0):
            for c in range(E):
                out[r0 + i, c] = projected[i, c] + b2[c]
    return hidden, out


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def ffn_backward(dout, hidden, x, w1, w2, p_drop, dx):
    """Gradients of :func:`ffn_forward` given dL/dout: adds dL/dx into ``dx`` (in place) and
    returns (dw1, db1, dw2), block by block as the forward pass. Per-block weight gradients are
    summed in block order, so no bit depends on the thread count.
    """
    N, E = x.shape
    F = w1.shape[1]
    keep_scale = np.float32(1.0 / (1.0 - p_drop))
    n_blocks = -(-N // ROW_BLOCK)
    dw1_parts = np.empty((n_blocks, E, F), np.float32)
    dw2_parts = np.empty((n_blocks, F, E), np.float32)
    db1_parts = np.zeros((n_blocks, F), np.float32)
    w1t = np.ascontiguousarray(w1.T)
    w2t = np.ascontiguousarray(w2.T)
    for block in prange(n_blocks):
        r0 = block * ROW_BLOCK
        r1 = min(N, r0 + ROW_BLOCK)
        h = hidden[r0:r1]
        d = dout[r0:r1]
        dw2_parts[block] = np.dot(h.T, d)
        dh = np.dot(d, w2t)
        sums = db1_parts[block]
        for i in range(r1 - r0):
            for c in range(F):
                g = dh[i, c] * keep_scale if h[i, c] > 0 else np.float32(0.0)
                dh[i, c] = g
                sums[c] += g
        dw1_parts[block] = np.dot(x[r0:r1].T, dh)
        dx[r0:r1] += np.dot(dh, w1t)
    dw1 = np.zeros((E, F), np.float32)
    dw2 = np.zeros((F, E), np.float32)
    db1 = np.zeros(F, np.float32)
    for block in range(n_blocks):
        dw1 += dw1_parts[block]
        dw2 += dw2_parts[block]
        db1 += db1_parts[block]
    return dw1, db1, dw2


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def linear_forward(x, w, b):
    """x w + b on rows of x [N, I] (Paddle's Linear), one row block per task: the GEMMs run on
    the kernels' threads instead of one BLAS thread beside idle ones."""
    N = x.shape[0]
    n_out = w.shape[1]
    out = np.empty((N, n_out), np.float32)
    for block in prange(-(-N // ROW_BLOCK)):
        r0 = block * ROW_BLOCK
        r1 = min(N, r0 + ROW_BLOCK)
        product = np.dot(x[r0:r1], w)
        for i in range(r1 - r0):
            for c in range(n_out):
                out[r0 + i, c] = product[i, c] + b[c]
    return out


@njit(parallel=True, fastmath=EXACT_ORDER, cache=True)
def linear_backward(dout, x, w, dx):
    """Gradients of :func:`linear_forward`: adds dout wᵀ into ``dx`` (in place) and returns
    (dw, db); per-block sums are added in block order (no bit depends on the thread count)."""
    N, n_in = x.shape
    n_out = w.shape[1]
    n_blocks = -(-N // ROW_BLOCK)
    dw_parts = np.empty((n_blocks, n_in, n_out), np.float32)
    db_parts = np.zeros((n_blocks, n_out), np.float32)
    wt = np.ascontiguousarray(w.T)
    for block in prange(n_blocks):
        r0 = block * ROW_BLOCK
        r1 = min(N, r0 + ROW_BLOCK)
        d = dout[r0:r1]
        dw_parts[block] = np.dot(x[r0:r1].T, d)
        sums = db_parts[block]
        for i in range(r1 - r0):
            for c in range(n_out):
                sums[c] += d[i, c]
        dx[r0:r1] += np.dot(d, wt)
    dw = np.zeros((n_in, n_out), np.float32)
    db = np.zeros(n_out, np.float32)
    for block in range(n_blocks):
        dw += dw_parts[block]
        db += db_parts[block]
    return dw, db
