"""The evaluation layer on the real LODOCV folds (light config): protocols and statistics end to
end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import (
    iter_amu_holdout_folds,
    iter_protocol_folds,
    pretrain_pool_keys,
)
from icb_kedro.evaluation.summary import (
    ALL_COHORTS,
    cohort_summary,
    overall_summary,
    paired_comparisons,
)
from icb_kedro.schema import PREDICTION_COLUMNS

pytestmark = pytest.mark.integration

# A fixed, training-free score (the Ayers IFN-gamma genes, within-cohort z-scores) and a random one.
IFNG_GENES = ["IFNG", "STAT1", "IDO1", "CXCL9", "CXCL10", "HLA-DRA"]


@pytest.fixture(scope="module")
def real_tables(foundation_project):
    folds = foundation_project.read("data/05_model_input/lodocv_folds.parquet")
    amu_folds = foundation_project.read("data/05_model_input/amu_holdout_folds.parquet")
    expression = foundation_project.read("data/03_primary/harmonized_expression.parquet")
    return folds, amu_folds, expression


def test_real_folds_are_leak_free(real_tables):
    folds, amu_folds, expression = real_tables
    labelled = set(expression.loc[expression["label"].notna(), "sample_key"])
    cohorts = sorted(expression["cohort"].unique())
    specs = list(iter_protocol_folds(folds, ["transfer", "loco", "within"]))
    assert [s.held_out for s in specs if s.protocol == "loco"] == cohorts
    for spec in specs:
        assert not set(spec.train_keys) & set(spec.test_keys)
        assert set(spec.train_keys) <= labelled and set(spec.test_keys) <= labelled
    for cohort in cohorts:
        pool = pretrain_pool_keys(folds, cohort)
        assert not any(key.startswith(cohort + ":") for key in pool)
    assert all(not set(s.train_keys) & set(s.test_keys) for s in iter_amu_holdout_folds(amu_folds))


def test_summaries_on_real_folds(real_tables):
    folds, _, expression = real_tables
    genes = [g for g in IFNG_GENES if g in expression.columns]
    assert len(genes) >= 4
    z = (
        expression.groupby("cohort")[genes]
        .transform(lambda x: (x - x.mean()) / x.std())
        .fillna(0.0)
    )  # constant gene -> 0
    score = pd.Series(1 / (1 + np.exp(-z.mean(axis=1).to_numpy())), index=expression["sample_key"])
    labels = pd.Series(expression["label"].to_numpy(), index=expression["sample_key"])
    rng = np.random.default_rng(0)
    frames = []
    for spec in iter_protocol_folds(folds, ["transfer", "loco"]):
        for model, prob in (
            ("ifng", score[spec.test_keys].to_numpy()),
            ("random", rng.random(len(spec.test_keys))),
        ):
            frames.append(
                pd.DataFrame(
                    {
                        "model": model,
                        "protocol": spec.protocol,
                        "cohort": spec.held_out,
                        "repeat": spec.repeat,
                        "trial": spec.trial,
                        "sample_key": spec.test_keys,
                        "y_true": labels[spec.test_keys].astype(int).to_numpy(),
                        "y_prob": prob,
                        "n_train": len(spec.train_keys),
                        "threshold": 0.5,
                    }
                )
            )
    predictions = pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)]
    cohorts = cohort_summary(predictions, n_boot=200, seed=0)
    overall = overall_summary(predictions, n_boot=200, seed=0)
    comparisons = paired_comparisons(predictions, reference_model="random", n_boot=200, seed=0)
    n_cohorts = expression["cohort"].nunique()
    assert len(cohorts) == 2 * 2 * n_cohorts
    assert (
        cohorts["auroc_mean"].between(0, 1).all()
        and (cohorts["ci_low"] <= cohorts["ci_high"]).all()
    )
    assert (overall["n_cohorts"] == n_cohorts).all()
    ifng_loco = overall[(overall["model"] == "ifng") & (overall["protocol"] == "loco")].iloc[0]
    assert 0.5 < ifng_loco["auroc_mean"] < 0.8  # a known, modest signature signal
    loco_all = comparisons[
        (comparisons["protocol"] == "loco") & (comparisons["cohort"] == ALL_COHORTS)
    ].iloc[0]
    assert loco_all["n_cohorts"] == n_cohorts and np.isfinite(loco_all["p"])
