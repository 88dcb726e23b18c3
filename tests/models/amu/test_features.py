"""AMU features: log constituent ratios with a pseudo-count, from ratios or log2(TPM+1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.amu.features import (
    PSEUDO_COUNT,
    amu_features,
    constituent_ratios_from_log2_tpm,
    log_constituent_ratios,
)


def test_log_ratios_keep_zeros_lowest_and_order() -> None:
    ratios = np.array([[0.0, 1.7e-7, 0.5, 0.4999998]])
    logged = log_constituent_ratios(ratios)
    np.testing.assert_allclose(logged, np.log(ratios + PSEUDO_COUNT))
    assert np.all(
        np.diff(logged[0, :3]) > 0
    )  # 0 < smallest detected < 0.5: order kept, larger = more expressed
    assert logged[0, 0] == pytest.approx(np.log(PSEUDO_COUNT))


def test_ratios_from_log2_tpm_sum_to_one_and_invert() -> None:
    tpm = np.array([[0.0, 10.0, 30.0, 60.0], [5.0, 5.0, 0.0, 0.0]])
    ratios = constituent_ratios_from_log2_tpm(np.log2(tpm + 1))
    np.testing.assert_allclose(ratios.sum(axis=1), 1.0)
    np.testing.assert_allclose(ratios[0], [0.0, 0.1, 0.3, 0.6], atol=1e-12)


def test_amu_features_uses_panel_order_and_scales() -> None:
    frame = pd.DataFrame({"sample_key": ["a", "b"], "G2": [0.25, 0.5], "G1": [0.75, 0.5]})
    got = amu_features(frame, ["G1", "G2"], "ratio")
    np.testing.assert_allclose(got, np.log(np.array([[0.75, 0.25], [0.5, 0.5]]) + PSEUDO_COUNT))
    np.testing.assert_allclose(amu_features(frame, ["G1"], "zscore"), [[0.75], [0.5]])
    log2 = frame.assign(G1=np.log2([4.0, 2.0]), G2=np.log2([2.0, 2.0]))  # TPM 3,1 and 1,1
    np.testing.assert_allclose(
        amu_features(log2, ["G1", "G2"], "log2_tpm1"),
        np.log(np.array([[0.75, 0.25], [0.5, 0.5]]) + PSEUDO_COUNT),
    )


def test_bad_inputs_raise_clear_errors() -> None:
    frame = pd.DataFrame({"G1": [0.5, np.nan], "G2": [0.5, 0.5]})
    with pytest.raises(ValueError, match="missing from the table.*G3"):
        amu_features(frame, ["G1", "G3"], "ratio")
    with pytest.raises(ValueError, match="non-finite"):
        amu_features(frame, ["G1", "G2"], "ratio")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        log_constituent_ratios(np.array([[-0.1, 1.1]]))
    with pytest.raises(ValueError, match="unknown scale"):
        amu_features(frame, ["G2"], "tpm")
    with pytest.raises(ValueError, match="zero TPM"):
        constituent_ratios_from_log2_tpm(np.zeros((1, 3)))
