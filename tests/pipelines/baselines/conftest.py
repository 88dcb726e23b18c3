"""Small synthetic inputs shaped like the foundation datasets, toy signature files, tiny params."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from icb_kedro.panels import select_panel_features
from icb_kedro.pipelines.baselines import nodes
from icb_kedro.pipelines.folds.nodes import make_amu_holdout_folds, make_lodocv_folds

GENES = [f"G{i}" for i in range(12)]
COHORTS = ["CohortA", "CohortB", "CohortC"]
AMU_GENES = [f"A{i}" for i in range(8)]

SIGNATURE_FILES = {
    "signature_INFO.txt": (
        "Signature\tmethod\tassociation\tPMID\n"
        "UP\tGSVA\tsensitive\t1\n"
        "DOWN\tGSVA\tresistance\t2\n"
        "WM\tweighted_mean\tsensitive\t3\n"
        "COX_IS\tspecific\tresistance\t4\n"
        "SPARSE\tGSVA\tsensitive\t5\n"
    ),
    "UP.csv": "UP\nG0\nG1\nG2\n",
    "DOWN.csv": "gene\nG6\nG7\nG8\n",
    "WM.csv": "gene;coef\nG0;1\nG1;1\nG9;-1\n",
    "COX_IS.csv": "gene;coef\nG9;1\nG10;1\nG0;-1\nG1;-1\n",
    "SPARSE.csv": "gene\nG0\nNOT_THERE\nALSO_MISSING\n",  # 1/3 genes: fails coverage
}

TINY_PARAMS = {
    "panel": "common",
    "protocols": ["transfer", "loco", "within", "amu_holdout"],
    "n_repeats": 1,
    "seed_offset": 0,
    "n_jobs": 1,
    "n_features": 8,
    "inner_cv": {"n_splits": 3},
    "threshold": {"method": "youden", "source": "oof"},
    "amu_holdout": {"n_trials": 2, "pseudo_count": 1e-6, "smote": True},
    "models": {
        "logreg": {"enabled": True, "search": "grid", "grid": {"C": [0.1, 1.0]}},
        "svm": {
            "enabled": True,
            "search": "grid",
            "grid": {"kernel": ["linear"], "C": [1], "gamma": [0.1]},
        },
        "rf": {
            "enabled": True,
            "search": "random",
            "n_iter": 1,
            "grid": {"n_estimators": [5], "max_depth": [2, 3]},
        },
        "adaboost": {"enabled": False},
        "xgboost": {
            "enabled": True,
            "search": "none",
            "params": {"n_estimators": 5, "max_depth": 2},
            "protocols": ["amu_holdout"],
        },
        "mlp": {"enabled": False},
        "cnn": {"enabled": False},
    },
    "signatures": {
        "panel": "common",
        "min_coverage": 0.8,
        "include_below_coverage": [],
        "ssgsea_weight": 0.25,
    },
    "evaluation": {"n_boot": 20, "seed": 0, "reference_model": None},
}


def _cohorts(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for c, cohort in enumerate(COHORTS):
        n = 24 + 6 * c
        label = pd.array(
            [1 if i % 3 == 0 else 0 for i in range(n - 2)] + [None, None], dtype="Int8"
        )  # 2 unlabelled
        signal = np.where(np.asarray(label.fillna(0)) == 1, 1.5, 0.0)[:, None] * (
            np.arange(len(GENES)) < 3
        )
        values = (rng.normal(3.0, 1.0, size=(n, len(GENES))) + signal).clip(0.01)
        frame = pd.DataFrame(values, columns=GENES)
        frame.insert(0, "label", label)
        frame.insert(0, "sample_key", [f"{cohort}:S{i}" for i in range(n)])
        frame.insert(0, "sample_id", [f"S{i}" for i in range(n)])
        frame.insert(0, "cohort", cohort)
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def _amu_matrix(rng: np.random.Generator, n: int = 45) -> pd.DataFrame:
    label = (np.arange(n) % 3 == 0).astype(int)  # 15 R / 30 NR
    tpm = rng.gamma(2.0, 10.0, size=(n, len(AMU_GENES))) * np.where(
        label[:, None] == 1, [3, 3, 1, 1, 1, 1, 1, 1], 1
    )
    tpm[rng.random(tpm.shape) < 0.05] = 0.0
    frame = pd.DataFrame(tpm / tpm.sum(axis=1, keepdims=True), columns=AMU_GENES)
    frame.insert(0, "label", pd.array(label, dtype="Int8"))
    frame.insert(0, "sample_key", [f"amu_{i:03d}" for i in range(n)])
    return frame


def make_synthetic_inputs() -> dict:
    """Three small cohorts with a responder signal in G0-G2, folds,
    an AMU-like matrix, signatures."""
    rng = np.random.default_rng(11)
    harmonized = _cohorts(rng)
    standardized = harmonized.copy()
    standardized[GENES] = harmonized.groupby("cohort")[GENES].transform(
        lambda v: (v - v.mean()) / v.std(ddof=0)
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
    amu = _amu_matrix(rng)
    return {
        "harmonized_expression": harmonized,
        "expression_standardized": standardized,
        "gene_panels": pd.DataFrame({"panel": "common", "gene": GENES}),
        "lodocv_folds": folds,
        "amu_matrix": amu,
        "amu_holdout_folds": make_amu_holdout_folds(
            amu, {"n_trials": 3, "base_seed": 42, "test_size": 0.2}
        ),
        "baselines_signature_files": dict(SIGNATURE_FILES),
    }


@pytest.fixture(scope="session")
def synthetic_inputs() -> dict:
    return make_synthetic_inputs()


@pytest.fixture()
def tiny_params() -> dict:
    return copy.deepcopy(TINY_PARAMS)


# ----------------------------------------------------------------- helpers shared by the node tests

SENTINEL = 1e6


def panel_features(inputs: dict, params: dict) -> pd.DataFrame:
    return select_panel_features(
        inputs["expression_standardized"], inputs["gene_panels"], params["panel"]
    )


def fit_model(inputs: dict, params: dict, model: str, features: pd.DataFrame | None = None):
    features = panel_features(inputs, params) if features is None else features
    return nodes.fit_predict_model(
        model,
        features,
        inputs["lodocv_folds"],
        inputs["amu_matrix"],
        inputs["amu_holdout_folds"],
        params,
    )
