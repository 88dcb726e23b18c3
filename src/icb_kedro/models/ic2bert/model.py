"""IC2Bert as small Haiku modules (model_spec.md section 2.3).

Shape glossary (used in the shape comments below):
    B  batch size
    L  sequence length = number of genes in the panel (one position per gene, fixed order)
    D  model width (128)
    G  gene-embedding width (64)
    H  attention heads (4)
    K  head width (D / H = 32)
    F  feed-forward width (256)
    V  vocabulary = n_bins + 2 (data bins 0..n_bins-1, [MASK] = n_bins, [MISSING] = n_bins + 1)

Differences from the original code, on purpose:
    * the expression embedding has n_bins + 2 rows, so [MASK] (id n_bins) has its own learned
      vector (spec item 10; the original clamps the mask id onto the top bin's row), and so
      has [MISSING] (a gene the cohort does not measure; never an MLM target);
    * a final LayerNorm after the last block, before the MLM head and the pooling. The
      original (pre-LN blocks) has none, so its pooled vector is the raw residual stream:
      measured here, a shared offset of norm 50-55 against sample differences of 1-1.5 per
      dimension, which Adam moved in one fine-tuning step (probabilities saturated, the
      untrained head's ranking kept). Standard pre-LN transformers (GPT-2, ViT) end with
      this LayerNorm;
    * the pooled vector is the mean over *measured* genes ([MISSING] positions excluded);
    * the classification head starts at zero weights (its bias is set to logit(prevalence)
      of the training rows by the fine-tuning code), so fine-tuning does not start from a
      random ranking shared by every fold;
    * ``gene_ids`` lets a call run on a subset of the panel's genes (the model has no
      positional embedding, only per-gene identity embeddings, so it is permutation-free):
      pretraining samples a random gene subset per step, far cheaper than the whole panel;
    * every block can return its real softmax attention probabilities [B, H, L, L]
      (spec item 15; the original returns the block output under that name).
Everything else (pre-LN blocks, He-uniform init, one-logit head) follows the original; the
parameter count is the original's 602,438 + 2 x 128 (embedding rows of [MASK], [MISSING])
+ 129 (the MLM head's extra output) + 2 x 128 (final LayerNorm) = 603,079 at 983 genes and
4 bins.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from icb_kedro.models.ic2bert.attention import chunked_attention
from icb_kedro.models.ic2bert.config import IC2BertConfig

__all__ = ["IC2Bert", "IC2BertConfig", "IC2BertOutput", "build_model", "count_parameters"]


class IC2BertOutput(NamedTuple):
    mlm_logits: jax.Array  # [B, L, V]
    cls_logit: jax.Array  # [B]
    pooled: jax.Array  # [B, D] mean over positions (input of the classification head)
    attention: tuple[jax.Array, ...] | None  # n_layers x [B, H, L, L] softmax probabilities


def he_uniform() -> hk.initializers.Initializer:
    """The original's init for embeddings, projections, attention, FFN and the cls head."""
    return hk.initializers.VarianceScaling(2.0, "fan_in", "uniform")


def _mix32(x: jax.Array) -> jax.Array:
    """lowbias32 integer finaliser (C. Wellons): a fast, well-mixed uint32 -> uint32 hash."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(0x846CA68B)
    return x ^ (x >> 16)


def hash_dropout(key: jax.Array, rate: float, x: jax.Array) -> jax.Array:
    """Inverted dropout whose keep-mask is a hash of (element index, two per-site seeds)."""
    seeds = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, x.size).reshape(x.shape)
    bits = _mix32(_mix32(index * jnp.uint32(0x9E3779B9) ^ seeds[0]) ^ seeds[1])
    keep = bits >= jnp.uint32(min(int(rate * 2**32), 2**32 - 1))
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))


def _dropout(x: jax.Array, rate: float, is_training: bool, rng: str) -> jax.Array:
    if not is_training or rate <= 0:
        return x
    if rng == "hash":
        return hash_dropout(hk.next_rng_key(), rate, x)
    return hk.dropout(hk.next_rng_key(), rate, x)


def _layer_norm(x: jax.Array, name: str) -> jax.Array:
    return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name=name)(x)


class CastLinear(hk.Module):
    """hk.Linear with its matmul done in ``dtype`` (float32 accumulation), output float32."""

    def __init__(self, output_size: int, dtype: str, w_init=None, name: str | None = None) -> None:
        super().__init__(name=name)
        self.output_size = output_size
        self.dtype = jnp.dtype(dtype)
        self.w_init = w_init

    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        w_init = self.w_init or hk.initializers.TruncatedNormal(1.0 / math.sqrt(fan_in))
        w = hk.get_parameter("w", [fan_in, self.output_size], jnp.float32, init=w_init)
        b = hk.get_parameter("b", [self.output_size], jnp.float32, init=jnp.zeros)
        y = jnp.matmul(
            x.astype(self.dtype), w.astype(self.dtype), preferred_element_type=jnp.float32
        )
        return y + b


class TokenEmbedding(hk.Module):
    """Expression-bin embedding + projected gene-identity embedding, added (spec 2.3)."""

    def __init__(self, config: IC2BertConfig, name: str | None = None) -> None:
        super().__init__(name=name)
        self.config = config

    def __call__(self, tokens: jax.Array, gene_ids: jax.Array | None = None) -> jax.Array:
        c = self.config
        expression = hk.Embed(
            c.vocab_size, c.d_model, w_init=he_uniform(), name="expression_embedding"
        )(tokens)  # [B, L, D]
        genes = hk.Embed(c.n_genes, c.gene_dim, w_init=he_uniform(), name="gene_embedding")(
            jnp.arange(c.n_genes) if gene_ids is None else gene_ids
        )  # [L, G]
        # The projection is the same for every sample: compute it once per batch, not per row.
        gene_vectors = hk.Linear(c.d_model, w_init=he_uniform(), name="gene_projection")(
            genes
        )  # [L, D]
        return expression + gene_vectors[None]  # [B, L, D]


class SelfAttention(hk.Module):
    """Multi-head self-attention with q/k/v/out projections (biases), no attention dropout."""

    def __init__(self, config: IC2BertConfig, name: str | None = None) -> None:
        super().__init__(name=name)
        self.config = config

    def __call__(
        self, x: jax.Array, return_probs: bool = False
    ) -> tuple[jax.Array, jax.Array | None]:
        c = self.config
        batch, length, _ = x.shape

        def heads(name: str) -> jax.Array:
            y = CastLinear(c.d_model, c.matmul_dtype, w_init=he_uniform(), name=name)(
                x
            )  # [B, L, D]
            return y.reshape(batch, length, c.n_heads, c.head_dim)  # [B, L, H, K]

        q, k, v = heads("query"), heads("key"), heads("value")
        probs = None
        dtype = jnp.dtype(c.matmul_dtype)
        if c.attention == "chunked" and not return_probs:
            to_heads = lambda t: t.transpose(0, 2, 1, 3)  # noqa: E731 - [B, L, H, K] <-> [B, H, L, K]
            attended = to_heads(
                chunked_attention(
                    to_heads(q),
                    to_heads(k),
                    to_heads(v),
                    1.0 / math.sqrt(c.head_dim),
                    c.attention_chunk,
                    c.matmul_dtype,
                )
            )  # [B, L, H, K]
        elif return_probs or c.attention == "einsum":
            scale = 1.0 / math.sqrt(c.head_dim)
            logits = jnp.einsum(
                "blhk,bmhk->bhlm",
                (q * scale).astype(dtype),
                k.astype(dtype),
                preferred_element_type=jnp.float32,
            )  # [B, H, L, L]
            probs = jax.nn.softmax(logits, axis=-1)  # [B, H, L, L], float32
            attended = jnp.einsum(
                "bhlm,bmhk->blhk",
                probs.astype(dtype),
                v.astype(dtype),
                preferred_element_type=jnp.float32,
            )  # [B, L, H, K]
        else:
            attended = jax.nn.dot_product_attention(
                q.astype(dtype), k.astype(dtype), v.astype(dtype)
            )  # [B, L, H, K]
            attended = attended.astype(jnp.float32)
        attended = attended.reshape(batch, length, c.d_model)  # [B, L, D]
        out = CastLinear(c.d_model, c.matmul_dtype, w_init=he_uniform(), name="output")(
            attended
        )  # [B, L, D]
        return out, (probs if return_probs else None)


class FeedForward(hk.Module):
    """Linear D->F, GELU, dropout, Linear F->D."""

    def __init__(self, config: IC2BertConfig, name: str | None = None) -> None:
        super().__init__(name=name)
        self.config = config

    def __call__(self, x: jax.Array, is_training: bool) -> jax.Array:
        c = self.config
        h = CastLinear(c.ffn_dim, c.matmul_dtype, w_init=he_uniform(), name="hidden")(
            x
        )  # [B, L, F]
        h = _dropout(jax.nn.gelu(h), c.dropout, is_training, c.dropout_rng)
        return CastLinear(c.d_model, c.matmul_dtype, w_init=he_uniform(), name="output")(
            h
        )  # [B, L, D]


class EncoderBlock(hk.Module):
    """Pre-LN block: x + Drop(MHA(LN(x))), then x + Drop(FFN(LN(x)))."""

    def __init__(self, config: IC2BertConfig, name: str | None = None) -> None:
        super().__init__(name=name)
        self.config = config

    def __call__(self, x: jax.Array, is_training: bool, return_probs: bool = False):
        rate, rng = self.config.dropout, self.config.dropout_rng
        attended, probs = SelfAttention(self.config, name="attention")(
            _layer_norm(x, "ln_attention"), return_probs
        )
        x = x + _dropout(attended, rate, is_training, rng)  # [B, L, D]
        ffn = FeedForward(self.config, name="ffn")(_layer_norm(x, "ln_ffn"), is_training)
        x = x + _dropout(ffn, rate, is_training, rng)  # [B, L, D]
        return x, probs


class IC2Bert(hk.Module):
    """Embedding -> n_layers pre-LN blocks -> MLM head per position and a pooled cls head."""

    def __init__(self, config: IC2BertConfig, name: str | None = "ic2bert") -> None:
        super().__init__(name=name)
        self.config = config

    def __call__(
        self,
        tokens: jax.Array,
        is_training: bool,
        return_attention: bool = False,
        gene_ids: jax.Array | None = None,
    ) -> IC2BertOutput:
        c = self.config
        expected = c.n_genes if gene_ids is None else gene_ids.shape[0]
        if tokens.ndim != 2 or tokens.shape[1] != expected:
            raise ValueError(f"tokens must be [batch, {expected}], got shape {tokens.shape}")
        x = _dropout(
            TokenEmbedding(c, name="embedding")(tokens, gene_ids),
            c.dropout,
            is_training,
            c.dropout_rng,
        )  # [B, L, D]
        if c.scan_layers:

            def layer(x: jax.Array, _layer_index: jax.Array):
                x, probs = EncoderBlock(c, name="block")(x, is_training, return_attention)
                return x, (probs if return_attention else jnp.zeros((), x.dtype))

            stack = hk.layer_stack(c.n_layers, with_per_layer_inputs=True, name="blocks")
            x, stacked = stack(layer)(x, jnp.arange(c.n_layers))  # stacked: [n_layers, B, H, L, L]
            attention = [stacked[i] for i in range(c.n_layers)] if return_attention else []
        else:
            attention = []
            for index in range(c.n_layers):
                x, probs = EncoderBlock(c, name=f"block_{index}")(x, is_training, return_attention)
                attention.append(probs)
        x = _layer_norm(x, "final_ln")  # deliberate: the original has none (see module docstring)
        mlm_logits = hk.Linear(c.vocab_size, name="mlm_head")(x)  # [B, L, V]
        measured = (tokens != c.missing_id).astype(x.dtype)[..., None]  # [B, L, 1]
        pooled = (x * measured).sum(axis=1) / jnp.maximum(measured.sum(axis=1), 1.0)  # [B, D]
        cls_logit = hk.Linear(1, w_init=jnp.zeros, name="classification_head")(pooled)[:, 0]  # [B]
        return IC2BertOutput(
            mlm_logits, cls_logit, pooled, tuple(attention) if return_attention else None
        )


def build_model(config: IC2BertConfig) -> hk.Transformed:
    """Pure init/apply pair: ``apply(params, rng, tokens, is_training, return_attention)``."""

    def forward(
        tokens: jax.Array,
        is_training: bool,
        return_attention: bool = False,
        gene_ids: jax.Array | None = None,
    ) -> IC2BertOutput:
        return IC2Bert(config)(tokens, is_training, return_attention, gene_ids)

    return hk.transform(forward)


def count_parameters(params: hk.Params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


CLASSIFICATION_HEAD = "ic2bert/classification_head"  # Haiku module path of the cls head
