"""AMU input features: log constituent ratios (numpy/pandas only, no Paddle).

The AMU paper turns each sample's TPM over its gene panel into constituent ratios (the
sample's TPM values rescaled to sum to 1) and logs them. The original files store
``-ln(ratio)`` with zeros kept as 0, so "not expressed" looks like "ratio = 1" and the scale
is inverted (spec 3.3). Here: ``ln(ratio + PSEUDO_COUNT)``, larger = more expressed, zeros
become the smallest value. Per-gene standardisation, when used, is fitted by the trainer on
training rows only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

# Added to every ratio before the log, so a zero ratio (gene not detected) maps below every
# detected value instead of colliding with "ratio = 1" as in the original. 1e-6 (1 TPM on a
# 1e6-TPM scale; the smallest non-zero ratio in the AMU matrix is 1.7e-7) is the value the
# baselines pipeline uses too, so AMU and its competitors see identical features. A fixed
# constant (configurable), never fitted on data.
PSEUDO_COUNT = 1e-6

# How a table's gene values are scaled, and thus how AMU features are made from them.
SCALE_RATIO = "ratio"  # constituent ratios (the AMU matrix): log them
SCALE_LOG2_TPM1 = "log2_tpm1"  # harmonized_expression: back to TPM, ratios over the panel, log
SCALE_ZSCORE = "zscore"  # expression_standardized: already on a usable scale, used as is
SCALES: tuple[str, ...] = (SCALE_RATIO, SCALE_LOG2_TPM1, SCALE_ZSCORE)


def _check_matrix(values: np.ndarray, what: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D samples x genes matrix, got shape {values.shape}")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{what}: {int(bad.sum())} non-finite values (first at row {row}, gene column {col})"
        )
    return values


def log_constituent_ratios(ratios: np.ndarray, pseudo_count: float = PSEUDO_COUNT) -> np.ndarray:
    """``ln(ratio + pseudo_count)`` of a samples x genes matrix of ratios in [0, 1]."""
    ratios = _check_matrix(ratios, "log_constituent_ratios")
    if pseudo_count <= 0:
        raise ValueError(f"log_constituent_ratios: pseudo_count must be > 0, got {pseudo_count}")
    if (ratios < 0).any() or (ratios > 1 + 1e-9).any():
        row, col = np.argwhere((ratios < 0) | (ratios > 1 + 1e-9))[0]
        raise ValueError(
            f"log_constituent_ratios: ratios must lie in [0, 1]; row {row}, gene column {col} is "
            f"{ratios[row, col]}"
        )
    return np.log(ratios + pseudo_count)


def constituent_ratios_from_log2_tpm(log2_tpm1: np.ndarray) -> np.ndarray:
    """Ratios over the given genes from log2(TPM+1) values: TPM / sum of the row's TPM."""
    values = _check_matrix(log2_tpm1, "constituent_ratios_from_log2_tpm")
    tpm = np.clip(np.exp2(values) - 1.0, 0.0, None)  # clip: float round-off just below 0
    totals = tpm.sum(axis=1, keepdims=True)
    if (totals <= 0).any():
        row = int(np.flatnonzero(totals[:, 0] <= 0)[0])
        raise ValueError(
            f"constituent_ratios_from_log2_tpm: sample row {row} has zero TPM over the whole panel"
        )
    return tpm / totals


def amu_features(
    frame: pd.DataFrame, genes: Sequence[str], scale: str, pseudo_count: float = PSEUDO_COUNT
) -> np.ndarray:
    """Feature matrix (samples x ``genes``, in that order) for AMU from a wide table.

    ``scale`` says what the table holds: ``ratio`` (AMU matrix), ``log2_tpm1``
    (harmonized_expression) or ``zscore`` (expression_standardized). Missing genes are an
    error, never a silent drop (spec 3.16: explicit gene index).
    """
    if scale not in SCALES:
        raise ValueError(f"amu_features: unknown scale {scale!r}; expected one of {SCALES}")
    missing = [g for g in genes if g not in frame.columns]
    if missing:
        raise ValueError(
            f"amu_features: {len(missing)} panel genes missing from the table: {missing[:10]}"
        )
    values = frame.loc[:, list(genes)].to_numpy(dtype=np.float64)
    if scale == SCALE_RATIO:
        return log_constituent_ratios(values, pseudo_count)
    if scale == SCALE_LOG2_TPM1:
        return log_constituent_ratios(constituent_ratios_from_log2_tpm(values), pseudo_count)
    return _check_matrix(values, "amu_features")
