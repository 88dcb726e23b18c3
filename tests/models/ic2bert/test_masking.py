"""80/10/10 masking: loss positions, mask id, random tokens are data ids only."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from icb_kedro.models.ic2bert.masking import mask_tokens


def test_masking_proportions_and_ids() -> None:
    n_bins = 4
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, n_bins, size=(400, 500)), jnp.int32)
    batch = jax.jit(mask_tokens, static_argnums=2)(jax.random.PRNGKey(0), tokens, n_bins)
    inputs, selected = np.asarray(batch.inputs), np.asarray(batch.selected).astype(bool)
    np.testing.assert_array_equal(np.asarray(batch.targets), np.asarray(tokens))
    assert abs(selected.mean() - 0.15) < 0.005
    masked = inputs == n_bins
    assert not (masked & ~selected).any()  # the mask id appears only at selected positions
    assert (inputs[~selected] == np.asarray(tokens)[~selected]).all()  # unselected: untouched
    assert abs(masked[selected].mean() - 0.8) < 0.01
    assert inputs.max() <= n_bins and inputs.min() >= 0  # random replacements are data ids
    changed = (inputs != np.asarray(tokens)) & selected & ~masked
    # 10% random ids, 3 of 4 of which differ from the original token.
    assert abs(changed[selected].mean() - 0.1 * 3 / 4) < 0.01


def test_masking_is_seeded() -> None:
    tokens = jnp.zeros((8, 50), jnp.int32)
    a = mask_tokens(jax.random.PRNGKey(3), tokens, 4)
    b = mask_tokens(jax.random.PRNGKey(3), tokens, 4)
    np.testing.assert_array_equal(np.asarray(a.inputs), np.asarray(b.inputs))
    with pytest.raises(ValueError):
        mask_tokens(jax.random.PRNGKey(0), tokens, 4, mask_prob=0.9, random_prob=0.2)


def test_missing_genes_are_never_masking_targets() -> None:
    """[MISSING] (n_bins + 1: the cohort does not measure the gene) is never selected, so it
    is never replaced by [MASK] or a random bin and never enters the MLM loss."""
    import jax
    import numpy as np

    from icb_kedro.models.ic2bert.masking import mask_tokens

    n_bins = 4
    tokens = np.random.default_rng(0).integers(0, n_bins, size=(64, 40)).astype(np.int32)
    tokens[:, :20] = n_bins + 1  # half the panel not measured
    batch = mask_tokens(jax.random.PRNGKey(0), jax.numpy.asarray(tokens), n_bins, select_prob=0.5)
    selected = np.asarray(batch.selected).astype(bool)
    assert not selected[:, :20].any() and selected[:, 20:].mean() > 0.4
    np.testing.assert_array_equal(np.asarray(batch.inputs)[:, :20], n_bins + 1)
