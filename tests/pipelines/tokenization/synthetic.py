"""Synthetic foundation-shaped tables for the IC2Bert pipeline tests (3 small cohorts).

Shared by the tokenization, ic2bert_pretrain and ic2bert_finetune test folders (each
conftest loads this file by path: the tests use pytest's importlib mode, no packages).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from icb_kedro.pipelines.folds.nodes import make_lodocv_folds

COHORTS = ["CohortA", "CohortB", "CohortC"]
GENES = [f"G{i}" for i in range(10)]


def synthetic_expression(seed: int = 0) -> pd.DataFrame:
    """Three cohorts (30/24/20 samples, a few unlabelled), labels tied to a latent factor."""
    rng = np.random.default_rng(seed)
    frames = []
    for cohort, n in zip(COHORTS, (30, 24, 20), strict=True):
        latent = rng.normal(size=n)
        values = latent[:, None] + 0.5 * rng.normal(size=(n, len(GENES)))
        label = pd.array((latent > 0).astype(int), dtype="Int8")
        label[:3] = pd.NA
        frame = pd.DataFrame(values, columns=GENES)
        frame.insert(0, "label", label)
        frame.insert(0, "sample_key", [f"{cohort}:s{i}" for i in range(n)])
        frame.insert(0, "sample_id", [f"s{i}" for i in range(n)])
        frame.insert(0, "cohort", cohort)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def synthetic_folds(expression: pd.DataFrame, n_trials: int = 2) -> dict[str, pd.DataFrame]:
    params = {
        "base_seed": 1001,
        "kfold": {"n_splits": 3, "n_repeats": n_trials},
        "paper": {"n_trials": n_trials, "test_size": 0.2},
    }
    return {c: make_lodocv_folds(expression, c, params) for c in COHORTS}


def synthetic_panels() -> pd.DataFrame:
    return pd.DataFrame(
        {"panel": ["ic2bert_prior"] * 8 + ["common"] * 10, "gene": GENES[:8] + GENES}
    )
