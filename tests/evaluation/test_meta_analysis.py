"""Random-effects meta-analysis: a published worked example, then AUROC across cohorts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.meta_analysis import (
    META_COLUMNS,
    auroc_meta_analysis,
    hanley_mcneil_variance,
    random_effects,
)

# BCG vaccine trials (Colditz et al. 1994; metafor's dat.bcg): tpos, tneg, cpos, cneg.
BCG = np.array(
    [
        [4, 119, 11, 128],
        [6, 300, 29, 274],
        [3, 228, 11, 209],
        [62, 13536, 248, 12619],
        [33, 5036, 47, 5761],
        [180, 1361, 372, 1079],
        [8, 2537, 10, 619],
        [505, 87886, 499, 87892],
        [29, 7470, 45, 7232],
        [17, 1699, 65, 1600],
        [186, 50448, 141, 27197],
        [5, 2493, 3, 2338],
        [27, 16886, 29, 17825],
    ],
    float,
)


def test_dersimonian_laird_reproduces_metafor_on_the_bcg_trials():
    # metafor: rma(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg, method="DL")
    # estimate -0.7141, se 0.1787, tau^2 0.3088, I^2 92.12 %, Q(df = 12) = 152.2330.
    treated, control = BCG[:, 0] + BCG[:, 1], BCG[:, 2] + BCG[:, 3]
    log_rr = np.log((BCG[:, 0] / treated) / (BCG[:, 2] / control))
    variance = 1 / BCG[:, 0] - 1 / treated + 1 / BCG[:, 2] - 1 / control
    result = random_effects(log_rr, variance, "dl")
    assert result["pooled"] == pytest.approx(-0.7141, abs=1e-4)
    assert result["se"] == pytest.approx(0.1787, abs=1e-4)
    assert result["tau2"] == pytest.approx(0.3088, abs=1e-4)
    assert result["i2"] == pytest.approx(0.9212, abs=1e-4)
    assert result["q"] == pytest.approx(152.2330, abs=1e-3)
    assert result["ci_low"] == pytest.approx(-0.7141 - 1.95996 * 0.17874, abs=1e-3)
    with pytest.raises(ValueError, match="variances"):
        random_effects([0.5, 0.6], [0.01, 0.0])


def test_hanley_mcneil_floor_is_positive_for_a_perfect_split():
    assert 0 < hanley_mcneil_variance(1.0, 3, 5) < hanley_mcneil_variance(0.75, 3, 5)
    assert hanley_mcneil_variance(0.0, 4, 4) == pytest.approx(hanley_mcneil_variance(1.0, 4, 4))


def _predictions(
    rng, cohorts: dict[str, tuple[int, float]], models=("good", "chance")
) -> pd.DataFrame:
    rows = []
    for model in models:
        for cohort, (n, shift) in cohorts.items():
            for trial in range(2):
                y = np.array([0, 1] * (n // 2))
                score = rng.normal(size=n) + (shift if model == "good" else 0.0) * y
                rows.append(
                    pd.DataFrame(
                        {
                            "model": model,
                            "protocol": "transfer",
                            "cohort": cohort,
                            "repeat": trial,
                            "trial": trial,
                            "sample_key": [f"{cohort}:{i}" for i in range(n)],
                            "y_true": y,
                            "y_prob": 1 / (1 + np.exp(-score)),
                            "threshold": 0.5,
                            "n_train": 50,
                        }
                    )
                )
    return pd.concat(rows, ignore_index=True)


def test_auroc_meta_analysis_pools_cohorts_and_names_the_ones_not_estimable():
    rng = np.random.default_rng(0)
    predictions = _predictions(rng, {"A": (60, 1.5), "B": (40, 1.5), "C": (20, 1.5)})
    # Cohort D: every test row a responder - its AUROC is undefined.
    one_class = _predictions(rng, {"D": (10, 1.0)}).assign(y_true=1)
    table = auroc_meta_analysis(
        pd.concat([predictions, one_class], ignore_index=True), {"n_boot": 200, "seed": 0}
    )
    assert list(table.columns) == list(META_COLUMNS)
    good = table.set_index("model").loc["good"]
    assert good["k"] == 3 and good["not_estimable"] == "D"
    assert (
        0.7 < good["pooled_auroc"] < 0.95
        and good["ci_low"] < good["pooled_auroc"] < good["ci_high"]
    )
    chance = table.set_index("model").loc["chance"]
    assert chance["ci_low"] < 0.5 < chance["ci_high"] + 0.05
    again = auroc_meta_analysis(
        pd.concat([predictions, one_class], ignore_index=True), {"n_boot": 200, "seed": 0}
    )
    pd.testing.assert_frame_equal(table, again)  # same seed, same numbers
