"""Small synthetic data and tiny AMU settings for the model tests (fast on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest

# A one-layer, narrow-FFN AMU: same code paths as the published model, ~100x cheaper.
TINY_MODEL = {"n_layers": 1, "ffn_dim": 16}


def separable_data(n: int = 48, n_genes: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes that differ in the first three genes (easy to learn), 1:2 imbalanced."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 3 == 0).astype(int)
    X = rng.normal(size=(n, n_genes))
    X[:, :3] += 2.0 * y[:, None]
    return X, y


@pytest.fixture
def tiny_data() -> tuple[np.ndarray, np.ndarray]:
    return separable_data()
