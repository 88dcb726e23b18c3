"""BERT-style masking for masked expression modelling (model_spec.md section 2.4).

Each position is selected with probability ``select_prob`` (0.15); a selected position is
replaced by the [MASK] id with probability 0.8, by a random *data* token (0..n_bins-1,
never the mask id) with probability 0.1, and kept with probability 0.1. The loss is taken
on selected positions only. The mask id is the fixed ``n_bins`` (spec item 10), not the
per-batch ``max token + 1`` of the original code. A [MISSING] position (``n_bins + 1``: the
cohort does not measure the gene) is never selected: there is no value to predict.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class MaskedBatch(NamedTuple):
    inputs: jax.Array  # [B, L] int32 tokens with masking applied
    targets: jax.Array  # [B, L] int32 original tokens
    selected: jax.Array  # [B, L] float32, 1 where the loss is taken


def mask_tokens(
    key: jax.Array,
    tokens: jax.Array,
    n_bins: int,
    select_prob: float = 0.15,
    mask_prob: float = 0.8,
    random_prob: float = 0.1,
) -> MaskedBatch:
    """Apply 80/10/10 masking to ``tokens`` [B, L] (pure; same key -> same masks)."""
    if not 0.0 < select_prob <= 1.0:
        raise ValueError(f"select_prob must be in (0, 1], got {select_prob}")
    if mask_prob < 0 or random_prob < 0 or mask_prob + random_prob > 1.0:
        raise ValueError(f"mask_prob + random_prob must be <= 1, got {mask_prob} + {random_prob}")
    select_key, action_key, random_key = jax.random.split(key, 3)
    measured = tokens < n_bins  # data ids only; [MISSING] is never a target
    selected = (jax.random.uniform(select_key, tokens.shape) < select_prob) & measured  # [B, L]
    action = jax.random.uniform(action_key, tokens.shape)  # [B, L]
    use_mask = selected & (action < mask_prob)
    use_random = selected & (action >= mask_prob) & (action < mask_prob + random_prob)
    random_tokens = jax.random.randint(
        random_key, tokens.shape, 0, n_bins, dtype=tokens.dtype
    )  # data ids only
    inputs = jnp.where(use_mask, jnp.asarray(n_bins, tokens.dtype), tokens)
    inputs = jnp.where(use_random, random_tokens, inputs)
    return MaskedBatch(inputs, tokens, selected.astype(jnp.float32))
