"""A small synthetic study for the interpretation pipeline tests.

Three cohorts and an AMU-like matrix in which one planted gene (``PLANT``) decides
response and survival: responders have high ``PLANT`` and live longer. Every other gene
is noise. Folds come from the folds pipeline's own node functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.pipelines.folds.nodes import combine_folds, make_amu_holdout_folds, make_lodocv_folds

COHORTS = ("CohortA", "CohortB", "CohortC")
NOISE = [f"G{i:02d}" for i in range(15)]
GENES = ["PLANT", *NOISE]
SIGNATURE_FILES = {
    "PLANTED.csv": "gene\nPLANT\nG00\nG01\n",
    "NOISE.csv": "gene;coef\nG10;1\nG11;-1\nG12;1\n",
    "IPS_genes.txt": "GENE\tNAME\tCLASS\tWEIGHT\nG05\tG05\tMHC\t1\nG06\tG06\tMHC\t1\n",
    "signature_INFO.txt": "Signature\tmethod\tassociation\tPMID\nPLANTED\tGSVA\tsensitive\t1\n",
}


def _study(seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    expression, clinical = [], []
    for c, cohort in enumerate(COHORTS):
        n = 36
        plant = rng.normal(size=n)
        label = (plant + 0.3 * rng.normal(size=n) > 0).astype(int)
        values = rng.normal(loc=5 + c, size=(n, len(GENES)))  # cohort shifts, as in real data
        values[:, 0] = 5 + c + plant
        keys = [f"{cohort}:S{i}" for i in range(n)]
        frame = pd.DataFrame(values, columns=GENES)
        frame.insert(0, "label", pd.array(label, dtype="Int8"))
        frame.insert(0, "sample_key", keys)
        frame.insert(0, "sample_id", [f"S{i}" for i in range(n)])
        frame.insert(0, "cohort", cohort)
        expression.append(frame)
        hazard = 0.08 * np.exp(-0.9 * plant)
        event_time = rng.exponential(1 / hazard)
        censor = rng.uniform(5, 40, size=n)
        clinical.append(
            pd.DataFrame(
                {
                    "cohort": cohort,
                    "sample_key": keys,
                    "survival_time_os": np.minimum(event_time, censor),
                    "event_occurred_os": (event_time <= censor).astype(float),
                    "survival_time_pfs": np.minimum(event_time, censor) * 0.6,
                    "event_occurred_pfs": (event_time <= censor).astype(float),
                    "survival_unit": "month",
                }
            )
        )
    harmonized = pd.concat(expression, ignore_index=True)
    standardized = harmonized.copy()
    standardized[GENES] = harmonized.groupby("cohort")[GENES].transform(
        lambda v: (v - v.mean()) / v.std(ddof=0)
    )
    folds_params = {
        "base_seed": 1001,
        "kfold": {"n_splits": 3, "n_repeats": 1},
        "paper": {"n_trials": 2, "test_size": 0.2},
    }
    lodocv = combine_folds(*(make_lodocv_folds(harmonized, c, folds_params) for c in COHORTS))

    amu_genes = ["PLANT", *NOISE[:9]]
    n = 60
    plant = rng.normal(size=n)
    amu_label = (plant > 0).astype(int)
    raw = np.exp(rng.normal(size=(n, len(amu_genes))))
    raw[:, 0] = np.exp(1.5 * plant)
    ratios = raw / raw.sum(axis=1, keepdims=True)
    amu_matrix = pd.DataFrame(ratios, columns=amu_genes)
    amu_matrix.insert(0, "label", pd.array(amu_label, dtype="Int8"))
    amu_matrix.insert(0, "sample_key", [f"amu_{i:03d}" for i in range(n)])
    amu_folds = make_amu_holdout_folds(
        amu_matrix, {"n_trials": 1, "base_seed": 42, "test_size": 0.25}
    )

    panels = pd.DataFrame(
        [("common", g) for g in GENES]
        + [("ic2bert_prior", g) for g in GENES[:8]]
        + [("amu160", g) for g in amu_genes],
        columns=["panel", "gene"],
    )
    cohort_summary = (
        harmonized.groupby("cohort").agg(n_samples=("sample_key", "size")).reset_index()
    )
    return {
        "harmonized_expression": harmonized,
        "expression_standardized": standardized,
        "expression_combat": standardized.copy(),
        "clinical_table": pd.concat(clinical, ignore_index=True),
        "lodocv_folds": lodocv,
        "amu_matrix": amu_matrix,
        "amu_holdout_folds": amu_folds,
        "gene_panels": panels,
        "cohort_summary": cohort_summary,
    }


@pytest.fixture(scope="session")
def signature_files() -> dict[str, str]:
    return dict(SIGNATURE_FILES)


@pytest.fixture(scope="session")
def synthetic_study() -> dict[str, pd.DataFrame]:
    return _study()


@pytest.fixture
def baselines_params() -> dict:
    """The parts of ``params:baselines`` the interpretation nodes read; fixed hyper-parameters."""
    return {
        "panel": "common",
        "seed_offset": 0,
        "n_jobs": 1,
        "inner_cv": {"n_splits": 3},
        "threshold": {"method": "youden", "source": "oof"},
        "amu_holdout": {"pseudo_count": 1e-6, "smote": True},
        "models": {
            "svm": {"search": "none", "params": {"kernel": "linear", "C": 1.0}},
            "xgboost": {
                "search": "none",
                "params": {"n_estimators": 30, "max_depth": 2, "learning_rate": 0.3},
            },
        },
    }


@pytest.fixture
def interpretation_params() -> dict:
    """Small but complete ``params:interpretation`` (same keys as conf/base)."""
    return {
        "shap": {
            "n_background": 5,
            "nsamples": 60,
            "l1_reg": False,
            "study": {"models": ["svm", "xgboost", "amu"], "n_trials": 1, "max_explain_rows": 8},
            "cohorts": {
                "models": ["svm", "xgboost", "amu", "ic2bert"],
                "protocol": "loco",
                "n_trials": 1,
                "cohorts": None,
                "max_explain_rows": 8,
            },
            "per_model": {
                "amu": {"n_background": 3, "nsamples": 40},
                "ic2bert": {"n_background": 2, "nsamples": 20, "max_explain_rows": 4},
            },
        },
        "ic2bert": {
            "expression": "expression_standardized",
            "n_repeats": 2,
            "permutation_genes": None,
            "attention_weight": 0.4,
            "permutation_weight": 0.6,
            "top_k": [10, 5, 3, 1],
        },
        "rankings": {"top_k": [1, 3]},
        "embeddings": {
            "fold": "amu_holdout|AMU|0",
            "n_clusters": 3,
            "perplexity": 3,
            "n_neighbours": 2,
            "n_permutations": 50,
            "seed": 0,
        },
        "enrichment": {"top_k": 3},
        "survival": {
            "top_k": 2,
            "endpoints": ["os", "pfs"],
            "min_events": 5,
            "penalizer": 0.0,
            "km_protocols": ["loco", "amu_holdout", "transfer", "within"],
        },
        "evaluation": {"n_boot": 50, "seed": 0},
        "report": {"title": "Synthetic study", "top_k": 3, "dpi": 60},
    }
