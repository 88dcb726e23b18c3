"""Changes of expression scale (the shared cohorts ship log2(TPM + 0.001); models train
on log2(TPM + 1))."""

from __future__ import annotations

import numpy as np
import pandas as pd


def log2_tpm_plus_one(log2_tpm_milli: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
    """Exact change of scale: log2(TPM + 0.001) -> log2(TPM + 1)."""
    tpm = np.clip(np.exp2(log2_tpm_milli) - 0.001, 0.0, None)
    return np.log2(tpm + 1.0)
