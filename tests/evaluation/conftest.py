"""Small synthetic fold and prediction tables for the evaluation-layer tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import iter_protocol_folds
from icb_kedro.schema import FOLD_COLUMNS, PREDICTION_COLUMNS

# cohort -> (responders, non-responders, unlabelled)
COHORTS = {"CohortA": (9, 12, 2), "CohortB": (6, 6, 0), "CohortC": (6, 9, 3)}
N_TRIALS = 3


def build_folds(cohorts: dict[str, tuple[int, int, int]] = COHORTS, n_trials: int = N_TRIALS, seed: int = 0) -> pd.DataFrame:
    """A folds table with the roles of ``schema.ROLES`` (stratified 2/3 - 1/3 target split)."""
    rng = np.random.default_rng(seed)
    samples = {
        cohort: (
            [f"{cohort}:R{i}" for i in range(n_pos)],
            [f"{cohort}:N{i}" for i in range(n_neg)],
            [f"{cohort}:U{i}" for i in range(n_unl)],
        )
        for cohort, (n_pos, n_neg, n_unl) in cohorts.items()
    }
    rows = []
    for held_out in cohorts:
        for trial in range(n_trials):
            responders, non_responders, unlabelled = samples[held_out]
            test = set(rng.choice(responders, max(1, len(responders) // 3), replace=False))
            test |= set(rng.choice(non_responders, max(1, len(non_responders) // 3), replace=False))
            for key in responders + non_responders:
                rows.append((held_out, trial, key, "target_test" if key in test else "target_train"))
            rows += [(held_out, trial, key, "target_unlabelled") for key in unlabelled]
            for other, (pos, neg, unl) in samples.items():
                if other != held_out:
                    rows += [(held_out, trial, key, "source") for key in pos + neg]
                    rows += [(held_out, trial, key, "source_unlabelled") for key in unl]
    folds = pd.DataFrame(rows, columns=["held_out", "trial", "sample_key", "role"])
    folds["cohort"] = folds["sample_key"].str.split(":").str[0]
    folds["seed"] = 1001 + folds["trial"]
    return folds[list(FOLD_COLUMNS)]


def build_predictions(
    folds: pd.DataFrame, strengths: dict[str, float], protocols=("transfer", "loco", "within"), seed: int = 0
) -> pd.DataFrame:
    """Predictions of models whose score is strength * label + noise (0 = random model)."""
    rng = np.random.default_rng(seed)
    frames = []
    for model, strength in strengths.items():
        for fold in iter_protocol_folds(folds, protocols):
            keys = np.array(fold.test_keys)
            y = np.array([":R" in key for key in keys], dtype=int)
            logit = strength * (2 * y - 1) + rng.normal(size=len(keys))
            frames.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "protocol": fold.protocol,
                        "cohort": fold.held_out,
                        "trial": fold.trial,
                        "sample_key": keys,
                        "y_true": y,
                        "y_prob": 1.0 / (1.0 + np.exp(-logit)),
                        "n_train": len(fold.train_keys),
                        "threshold": 0.5,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)]


@pytest.fixture
def make_folds():
    """The folds builder, for tests that need other cohort sizes."""
    return build_folds


@pytest.fixture
def make_predictions():
    """The predictions builder, for tests that need other models."""
    return build_predictions


@pytest.fixture
def folds() -> pd.DataFrame:
    return build_folds()


@pytest.fixture
def predictions(folds: pd.DataFrame) -> pd.DataFrame:
    return build_predictions(folds, {"good": 1.0, "random": 0.0, "weak": 0.4})
