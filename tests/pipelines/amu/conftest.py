"""Small synthetic inputs shaped like the foundation datasets, and tiny amu parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.pipelines.folds.nodes import make_amu_holdout_folds, make_lodocv_folds

GENES = [f"G{i}" for i in range(10)]
PANEL = GENES[:6]
COHORTS = ["CohortA", "CohortB", "CohortC"]


def tiny_params(**overrides) -> dict:
    params = {
        "model": {"n_layers": 1, "ffn_dim": 16},
        "train": {"epochs": 2, "batch_size": 32, "learning_rate": 1e-3, "num_threads": 1},
        "threshold_method": "youden",
        "n_jobs": 1,
        "study": {
            "protocols": ["amu_holdout", "amu_holdout_leaky"],
            "n_trials": 2,
            "test_size": 0.2,
        },
        "cohorts": {
            "protocols": ["transfer", "loco", "within"],
            "n_repeats": 1,
            "panel": "amu160",
            "expression": "harmonized_expression",
        },
        "final_model": {"seed": 0},
        "summary": {"n_boot": 20, "seed": 0},
    }
    params.update(overrides)
    return params


def _amu_matrix(rng: np.random.Generator, n: int = 45) -> pd.DataFrame:
    label = (np.arange(n) % 3 == 0).astype(int)  # 15 R / 30 NR
    tpm = rng.gamma(2.0, 10.0, size=(n, len(GENES))) * np.where(
        label[:, None] == 1, [3, 3, 1, 1, 1, 1, 1, 1, 1, 1], 1
    )
    tpm[rng.random(tpm.shape) < 0.05] = 0.0
    ratios = tpm / tpm.sum(axis=1, keepdims=True)
    frame = pd.DataFrame(ratios, columns=GENES)
    frame.insert(0, "label", pd.array(label, dtype="Int8"))
    frame.insert(0, "sample_key", [f"amu_{i:03d}" for i in range(n)])
    return frame


def _cohorts(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for c, cohort in enumerate(COHORTS):
        n = 20 + 4 * c
        label = pd.array(
            [1 if i % 3 == 0 else 0 for i in range(n - 2)] + [None, None], dtype="Int8"
        )  # 2 unlabelled
        values = (
            rng.normal(3.0, 1.5, size=(n, len(GENES))).clip(0)
            + np.where(np.asarray(label.fillna(0)) == 1, 1.0, 0.0)[:, None]
        )
        frame = pd.DataFrame(values, columns=GENES)
        frame.insert(0, "label", label)
        frame.insert(0, "sample_key", [f"{cohort}:S{i}" for i in range(n)])
        frame.insert(0, "sample_id", [f"S{i}" for i in range(n)])
        frame.insert(0, "cohort", cohort)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="session")
def synthetic_inputs() -> dict:
    rng = np.random.default_rng(7)
    amu_matrix = _amu_matrix(rng)
    harmonized = _cohorts(rng)
    standardized = harmonized.copy()
    standardized[GENES] = harmonized.groupby("cohort")[GENES].transform(
        lambda v: (v - v.mean()) / v.std()
    )
    folds = pd.concat(
        [
            make_lodocv_folds(
                harmonized,
                c,
                {
                    "base_seed": 1001,
                    "kfold": {"n_splits": 3, "n_repeats": 1},
                    "paper": {"n_trials": 2, "test_size": 0.2},
                },
            )
            for c in COHORTS
        ],
        ignore_index=True,
    )
    panels = pd.DataFrame(
        {"panel": ["common"] * len(GENES) + ["amu160"] * len(PANEL), "gene": GENES + PANEL}
    )
    return {
        "amu_matrix": amu_matrix,
        "amu_holdout_folds": make_amu_holdout_folds(
            amu_matrix, {"n_trials": 2, "base_seed": 42, "test_size": 0.2}
        ),
        "harmonized_expression": harmonized,
        "expression_standardized": standardized,
        "gene_panels": panels,
        "lodocv_folds": folds,
    }
