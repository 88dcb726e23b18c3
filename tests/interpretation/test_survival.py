"""Cox per gene (stratified by cohort) and KM by prediction on simulated survival data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from icb_kedro.interpretation.survival_cox import cox_per_gene, plot_forest
from icb_kedro.interpretation.survival_data import survival_frame
from icb_kedro.interpretation.survival_km import kaplan_meier_by_prediction, per_sample_calls

TRUE_LOG_HR = 0.9  # hazard gene: HR = exp(0.9) = 2.46 per SD


@pytest.fixture(scope="module")
def cohorts() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two cohorts with different baseline hazards and expression scales.

    ``HAZARD`` raises the hazard, ``PROTECT`` lowers it, ``NULL`` does nothing. Cohort B has
    a 4x higher baseline hazard and expression shifted by +5 (what the strata and the
    within-cohort z-score must absorb).
    """
    rng = np.random.default_rng(0)
    expression, clinical = [], []
    for cohort, baseline, shift, n in (("A", 0.05, 0.0, 150), ("B", 0.2, 5.0, 150)):
        z = rng.normal(size=(n, 3))
        rate = baseline * np.exp(TRUE_LOG_HR * z[:, 0] - 0.7 * z[:, 1])
        event_time = rng.exponential(1 / rate)
        censor_time = rng.uniform(5, 60, size=n)
        keys = [f"{cohort}:{i}" for i in range(n)]
        expression.append(
            pd.DataFrame(
                {
                    "cohort": cohort,
                    "sample_key": keys,
                    "HAZARD": z[:, 0] + shift,
                    "PROTECT": z[:, 1] * 2 + shift,
                    "NULL": z[:, 2],
                }
            )
        )
        time = np.minimum(event_time, censor_time)
        clinical.append(
            pd.DataFrame(
                {
                    "cohort": cohort,
                    "sample_key": keys,
                    "survival_time_os": time,
                    "event_occurred_os": (event_time <= censor_time).astype(float),
                    # PFS only for cohort A (as PFS is missing for some real cohorts)
                    "survival_time_pfs": time if cohort == "A" else np.nan,
                    "event_occurred_pfs": (event_time <= censor_time).astype(float)
                    if cohort == "A"
                    else np.nan,
                    "survival_unit": "month",
                }
            )
        )
    return pd.concat(expression, ignore_index=True), pd.concat(clinical, ignore_index=True)


def test_planted_hazard_genes_get_the_right_hazard_ratios(cohorts):
    expression, clinical = cohorts
    table = cox_per_gene(
        expression, clinical, ["HAZARD", "PROTECT", "NULL"], endpoints=("os", "pfs")
    )
    os_rows = table[table["endpoint"] == "os"].set_index("gene")
    assert os_rows.loc["HAZARD", "hr"] > 1.8 and os_rows.loc["HAZARD", "ci_low"] > 1.0
    assert os_rows.loc["PROTECT", "hr"] < 0.7 and os_rows.loc["PROTECT", "ci_high"] < 1.0
    assert os_rows.loc["NULL", "ci_low"] < 1.0 < os_rows.loc["NULL", "ci_high"]
    assert os_rows.loc["HAZARD", "q_value"] < 1e-6
    assert os_rows.loc["HAZARD", "n"] == 300 and os_rows.loc["HAZARD", "n_cohorts"] == 2
    pfs_rows = table[table["endpoint"] == "pfs"].set_index("gene")
    assert (
        pfs_rows.loc["HAZARD", "n"] == 150 and pfs_rows.loc["HAZARD", "n_excluded"] == 150
    )  # B has no PFS
    assert pfs_rows.loc["HAZARD", "hr"] > 1.5
    assert isinstance(plot_forest(table), Figure)


def test_too_few_events_give_a_note_not_an_error(cohorts):
    expression, clinical = cohorts
    table = cox_per_gene(expression, clinical, ["HAZARD"], endpoints=("os",), min_events=10_000)
    assert np.isnan(table.loc[0, "hr"]) and "fewer than" in table.loc[0, "note"]


def test_survival_frame_validates(cohorts):
    _, clinical = cohorts
    frame, excluded = survival_frame(clinical, "pfs")
    assert len(frame) == 150 and excluded == 150
    days = clinical.assign(survival_unit="days")
    frame_days, _ = survival_frame(days, "os")
    np.testing.assert_allclose(
        frame_days["time"].to_numpy() * 30.4375, clinical["survival_time_os"].to_numpy()
    )
    with pytest.raises(ValueError, match="unknown survival_unit"):
        survival_frame(clinical.assign(survival_unit="fortnight"), "os")
    with pytest.raises(ValueError, match="unknown endpoint"):
        survival_frame(clinical, "dfs")
    with pytest.raises(ValueError, match="0/1"):
        survival_frame(clinical.assign(event_occurred_os=2.0), "os")


def test_kaplan_meier_by_prediction_separates_planted_groups(cohorts):
    expression, clinical = cohorts
    # A "model" that calls low-HAZARD patients responders: they survive longer.
    rows = []
    for trial in (0, 1):
        rows.append(
            pd.DataFrame(
                {
                    "model": "m",
                    "protocol": "transfer",
                    "cohort": expression["cohort"],
                    "trial": trial,
                    "sample_key": expression["sample_key"],
                    "y_true": 0,
                    "y_prob": 1
                    / (
                        1
                        + np.exp(
                            expression["HAZARD"]
                            - expression.groupby("cohort")["HAZARD"].transform("mean")
                        )
                    ),
                    "n_train": 10,
                    "threshold": 0.5,
                }
            )
        )
    predictions = pd.concat(rows, ignore_index=True)
    calls = per_sample_calls(predictions)
    assert len(calls) == 300 and (calls["n_folds"] == 2).all()
    summary, figure = kaplan_meier_by_prediction(predictions, clinical, "os", title="m")
    assert summary["n"] == 300
    assert summary["logrank_p"] < 1e-4
    assert summary["hr"] < 0.6  # predicted responders have the lower hazard
    assert summary["median_months_responders"] > summary["median_months_non_responders"]
    assert isinstance(figure, Figure)


def test_selected_genes_are_compared_with_as_many_random_genes(cohorts):
    """Planted survival genes beat random genes; a selection of noise genes does not."""
    from icb_kedro.interpretation.survival_null import random_gene_null

    expression, clinical = cohorts
    rng = np.random.default_rng(1)
    noise = pd.DataFrame(
        rng.normal(size=(len(expression), 30)), columns=[f"N{i}" for i in range(30)]
    )
    expression = pd.concat([expression, noise], axis=1)
    pool = [f"N{i}" for i in range(30)]
    planted = cox_per_gene(expression, clinical, ["HAZARD", "PROTECT"], endpoints=("os",))
    null = random_gene_null(planted, expression, clinical, pool, n_random=20, n_sets=200, seed=0)
    row = null.iloc[0]
    assert (
        row["endpoint"] == "os"
        and row["n_selected"] == 2
        and row["n_selected_significant"] == 2
        and row["n_random"] == 20
    )
    assert row["share_random"] < 0.3 and row["empirical_p"] < 0.1
    chosen_noise = cox_per_gene(expression, clinical, ["N0", "N1", "NULL"], endpoints=("os",))
    null = random_gene_null(
        chosen_noise, expression, clinical, pool, n_random=20, n_sets=200, seed=0
    )
    assert null.iloc[0]["empirical_p"] > 0.2  # nothing special about these genes
    again = random_gene_null(
        chosen_noise, expression, clinical, pool, n_random=20, n_sets=200, seed=0
    )
    pd.testing.assert_frame_equal(null, again)  # seeded


def test_the_report_says_when_the_random_gene_null_is_not_estimable():
    from icb_kedro.interpretation.survival_null import NULL_COLUMNS
    from icb_kedro.reporting.report import render_report
    from icb_kedro.reporting.sections_biology import section_survival
    from icb_kedro.reporting.study_inputs import StudyInputs

    null = pd.DataFrame(
        [
            {
                "endpoint": "os",
                "n_selected": 4,
                "n_selected_significant": 2,
                "share_selected": 0.5,
                "n_random": 10,
                "share_random": 0.1,
                "null_mean": 0.4,
                "null_q95": 2.0,
                "empirical_p": 0.02,
                "alpha": 0.05,
                "n_sets": 100,
            },
            {
                "endpoint": "pfs",
                "n_selected": 0,
                "n_selected_significant": 0,
                "share_selected": np.nan,
                "n_random": 10,
                "share_random": 0.1,
                "null_mean": np.nan,
                "null_q95": np.nan,
                "empirical_p": np.nan,
                "alpha": 0.05,
                "n_sets": 100,
            },
        ],
        columns=list(NULL_COLUMNS),
    )
    html = render_report("t", [section_survival(StudyInputs(cox_null=null))])
    assert "empirical p = 0.020 (100 sets): more than random genes" in html
    assert "PFS, selected vs random genes</strong>: not estimable" in html
