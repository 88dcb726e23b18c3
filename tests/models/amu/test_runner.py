"""Fold runner: predictions table contract, thresholds from training rows, n_jobs-invariant."""

from __future__ import annotations

import numpy as np
import pandas as pd

from icb_kedro.models.amu.runner import FoldData, run_folds
from icb_kedro.models.amu.train_config import TrainConfig
from icb_kedro.schema import PREDICTION_COLUMNS

from .conftest import TINY_MODEL, separable_data


def _folds() -> list[FoldData]:
    folds = []
    for trial in range(2):
        X, y = separable_data(n=36, n_genes=8, seed=trial)
        folds.append(
            FoldData(
                "within",
                "C",
                trial,
                trial,
                100 + trial,
                X[:27],
                y[:27],
                X[27:],
                y[27:],
                [f"s{i}" for i in range(27, 36)],
            )
        )
    return folds


def test_run_folds_contract_and_parallel_equals_serial() -> None:
    genes = [f"G{i}" for i in range(8)]
    train = TrainConfig(epochs=2, num_threads=1)
    serial, weights = run_folds(_folds(), genes, TINY_MODEL, train, n_jobs=1)
    parallel, weights_parallel = run_folds(_folds(), genes, TINY_MODEL, train, n_jobs=2)
    assert list(serial.columns) == list(PREDICTION_COLUMNS)
    assert len(serial) == 18 and (serial["n_train"] == 27).all()
    assert serial.groupby("trial")["threshold"].nunique().eq(1).all()
    pd.testing.assert_frame_equal(serial, parallel)
    assert sorted(weights) == ["within|C|0", "within|C|1"]
    np.testing.assert_array_equal(
        weights["within|C|1"]["state"]["classifier.weight"],
        weights_parallel["within|C|1"]["state"]["classifier.weight"],
    )
    assert (
        weights["within|C|0"]["train_config"]["seed"] == 100
    )  # each fold trains with its own seed
