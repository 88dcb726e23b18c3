"""Tiny IC2Bert settings and synthetic token data for the model tests (fast on 2 CPU cores).

The architecture code paths are the real ones; only widths/depth shrink. The paper-size
model is exercised by the parameter-count tests (init only) and the light integration run.
"""

from __future__ import annotations

import numpy as np
import pytest

from icb_kedro.models.ic2bert.config import IC2BertConfig

TINY = {"d_model": 16, "gene_dim": 8, "n_layers": 2, "n_heads": 2, "ffn_dim": 32}


@pytest.fixture(scope="session")
def tiny_config() -> IC2BertConfig:
    return IC2BertConfig(n_genes=12, n_bins=4, **TINY)


def correlated_tokens(
    n: int, n_genes: int = 12, n_bins: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens driven by one latent factor (so masked genes are predictable from the others)
    and labels = sign of that factor (so a classifier can learn them)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 1))
    values = latent + 0.4 * rng.normal(size=(n, n_genes))
    edges = np.quantile(values, np.arange(1, n_bins) / n_bins)
    tokens = np.searchsorted(edges, values).astype(np.int32)
    return tokens, (latent[:, 0] > 0).astype(int)


@pytest.fixture(scope="session")
def token_data() -> tuple[np.ndarray, np.ndarray]:
    return correlated_tokens(160)
