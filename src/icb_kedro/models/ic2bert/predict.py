"""Inference: probabilities, pooled features and attention importance (no training here)."""

from __future__ import annotations

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from icb_kedro.models.ic2bert.checkpoint import ModelBundle
from icb_kedro.models.ic2bert.model import IC2BertConfig, build_model
from icb_kedro.models.ic2bert.tokenizer import tokenize


@functools.cache
def _inference_functions(config: IC2BertConfig):
    model = build_model(config)

    def forward(params, tokens):
        out = model.apply(params, None, tokens, False)
        return out.cls_logit, out.pooled

    def expected_bins(params, tokens, gene_ids):
        # Per-gene readout through the MLM head: E[bin] = sum_b b * softmax(logits[..., :n_bins])
        # (data bins only), [B, L]; NaN where the gene is [MISSING] (no value to read).
        out = model.apply(params, None, tokens, False, False, gene_ids)
        probs = jax.nn.softmax(out.mlm_logits[..., : config.n_bins], axis=-1)
        value = probs @ jnp.arange(config.n_bins, dtype=probs.dtype)
        return jnp.where(tokens == config.missing_id, jnp.nan, value)

    def attention_received(params, tokens):
        # Mean over layers, heads and query positions of the softmax probability each key
        # (gene) receives: [B, L]. Reduced inside jit so [B, H, L, L] never reaches the host.
        out = model.apply(params, None, tokens, False, return_attention=True)
        stacked = jnp.stack(out.attention)  # [layers, B, H, L, L]
        return stacked.mean(axis=(0, 2, 3))  # [B, L]

    return jax.jit(forward), jax.jit(attention_received), jax.jit(expected_bins)


def eval_batch_size(n_rows: int, largest: int) -> int:
    """A batch size from a few fixed buckets (8, 16, 32, ... up to ``largest``): small sets are
    not padded to a big batch, and each bucket compiles once."""
    size = 8
    while size < min(n_rows, largest):
        size *= 2
    return min(size, max(largest, 1))


def _batched(fn, params, tokens: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Apply ``fn`` over fixed-size (padded) batches; returns per-output arrays of len(tokens)."""
    tokens = np.asarray(tokens, np.int32)
    if len(tokens) == 0:
        raise ValueError("no samples to score")
    batch_size = eval_batch_size(len(tokens), batch_size)
    chunks: list[list[np.ndarray]] = []
    for start in range(0, len(tokens), batch_size):
        idx = np.arange(start, min(start + batch_size, len(tokens)))
        outputs = fn(params, tokens[np.resize(idx, batch_size)])
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        chunks.append([np.asarray(o)[: len(idx)] for o in outputs])
    return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]


def predict_logits(
    config: IC2BertConfig, params: hk.Params, tokens: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    forward = _inference_functions(config)[0]
    return _batched(forward, params, tokens, batch_size)[0].astype(np.float64)


def predict_proba(
    config: IC2BertConfig, params: hk.Params, tokens: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """P(responder) per sample (sigmoid of the classification logit)."""
    return 1.0 / (1.0 + np.exp(-predict_logits(config, params, tokens, batch_size)))


def pooled_features(
    config: IC2BertConfig, params: hk.Params, tokens: np.ndarray, batch_size: int = 64
) -> np.ndarray:
    """Mean-pooled encoder output [n, D] (input of the classification head), no dropout."""
    forward = _inference_functions(config)[0]
    return _batched(forward, params, tokens, batch_size)[1].astype(np.float32)


def context_chunks(n_genes: int, context: int, seed: int = 0) -> list[np.ndarray]:
    """One seeded partition of the panel's gene indices into sorted chunks of about
    ``context`` genes (at most ``context``, spread evenly): how a model pretrained on random
    ``gene_subset``-gene contexts is read (``expected_bin_features``) and validated
    (``pretrain_loop.evaluate_mlm``). ``context`` 0 or >= n_genes: the whole panel."""
    if not 0 < context < n_genes:
        return [np.arange(n_genes)]
    order = np.random.default_rng(seed).permutation(n_genes)
    return [np.sort(c) for c in np.array_split(order, int(np.ceil(n_genes / context)))]


def expected_bin_features(
    config: IC2BertConfig,
    params: hk.Params,
    tokens: np.ndarray,
    batch_size: int = 8,
    context: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Per-gene readout [n, L]: each gene's expected bin under the MLM head, read on the
    unmasked input (the encoder's contextual estimate of that gene's level); NaN where the
    gene is [MISSING].

    ``context`` > 0 reads the panel in fixed chunks of about that many genes (one seeded
    partition of the panel, the same for every sample): the length the model was pretrained
    on (``gene_subset``), and attention costs ~L^2, so 4 chunks of 234 cost ~4x less than
    the whole 937-gene panel. Small batches (default 8): [B, H, L, L] attention tensors of
    large batches spill out of cache on a CPU (measured 3.7x slower per sample at 64 than 2).
    """
    expected = _inference_functions(config)[2]
    tokens = np.asarray(tokens, np.int32)
    out = np.empty(tokens.shape, np.float64)
    for chunk in context_chunks(tokens.shape[1], context, seed):
        ids = jnp.asarray(chunk, jnp.int32)
        out[:, chunk] = _batched(
            lambda p, t: expected(p, t, ids), params, tokens[:, chunk], batch_size
        )[0]
    return out


def received_attention(
    config: IC2BertConfig, params: hk.Params, tokens: np.ndarray, batch_size: int = 8
) -> np.ndarray:
    """[n_samples, n_genes]: the real softmax attention each gene receives, averaged over
    layers, heads and query positions (spec 2.6). Raw, not normalised: every row is a mean of
    softmax rows, so ``interpretation.importance.attention_importance_from_received`` can
    check that (non-negative, sums to 1) before it computes I_att(i) = |w_i| / sum_j |w_j|.
    """
    attention = _inference_functions(config)[1]
    return _batched(attention, params, tokens, batch_size)[0]


def score_tokens(bundle: ModelBundle, tokens: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """P(responder) of token rows through the bundle's readout (``metadata['readout']``:
    a fitted ``LinearReadout`` on per-gene expected bins or pooled features), else its head."""
    from icb_kedro.models.ic2bert.readout import LinearReadout, readout_features

    readout = bundle.metadata.get("readout")
    if readout:
        fitted = LinearReadout.from_dict(readout)
        x = readout_features(
            fitted.features,
            bundle.config,
            bundle.params,
            tokens,
            fitted.batch_size,
            fitted.context,
            fitted.context_seed,
        )
        return fitted.predict_proba(x)
    return predict_proba(bundle.config, bundle.params, tokens, batch_size)


def score_frame(bundle: ModelBundle, expression: pd.DataFrame, batch_size: int = 64) -> np.ndarray:
    """P(responder) for a wide expression table already on the bundle's input scale; panel
    genes that are absent or NaN enter as [MISSING] (the training policy)."""
    tokens = tokenize(bundle.tokenizer, expression, where="IC2Bert input", allow_absent=True)
    return score_tokens(bundle, tokens, batch_size)


def head_proba(params: hk.Params, features: np.ndarray) -> np.ndarray:
    """P(responder) from pooled features [n, D] and the classification head (numpy)."""
    from icb_kedro.models.ic2bert.weights import head_logits

    logits = head_logits(params, features, np.float64)
    return 1.0 / (1.0 + np.exp(-logits))
