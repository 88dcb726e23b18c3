"""Small synthetic fold and prediction tables for the evaluation-layer tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import iter_protocol_folds
from icb_kedro.pipelines.folds.nodes import combine_folds, make_lodocv_folds
from icb_kedro.schema import PREDICTION_COLUMNS

# cohort -> (responders, non-responders, unlabelled)
COHORTS = {"CohortA": (9, 12, 2), "CohortB": (6, 6, 0), "CohortC": (6, 9, 3)}
N_SPLITS, N_REPEATS, N_PAPER = 3, 2, 2


def build_folds(
    cohorts: dict[str, tuple[int, int, int]] = COHORTS,
    n_repeats: int = N_REPEATS,
    n_splits: int = N_SPLITS,
    n_paper: int = N_PAPER,
) -> pd.DataFrame:
    """A folds table made by the folds pipeline's own node from a synthetic sample table
    (keys ``<cohort>:R<i>`` responders, ``:N<i>`` non-responders, ``:U<i>`` unlabelled)."""
    rows = []
    for cohort, (n_pos, n_neg, n_unl) in cohorts.items():
        rows += [(cohort, f"{cohort}:R{i}", 1) for i in range(n_pos)]
        rows += [(cohort, f"{cohort}:N{i}", 0) for i in range(n_neg)]
        rows += [(cohort, f"{cohort}:U{i}", None) for i in range(n_unl)]
    samples = pd.DataFrame(rows, columns=["cohort", "sample_key", "label"]).astype(
        {"label": "Int8"}
    )
    params = {
        "base_seed": 1001,
        "kfold": {"n_splits": n_splits, "n_repeats": n_repeats},
        "paper": {"n_trials": n_paper, "test_size": 0.34},
    }
    return combine_folds(*(make_lodocv_folds(samples, cohort, params) for cohort in cohorts))


def build_predictions(
    folds: pd.DataFrame,
    strengths: dict[str, float],
    protocols=("transfer", "loco", "within"),
    seed: int = 0,
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
                        "repeat": fold.repeat,
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
