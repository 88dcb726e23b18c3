"""Results tables have the documented columns and agree with the per-fold metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.metrics import binary_metrics
from icb_kedro.evaluation.summary import (
    ALL_COHORTS,
    COHORT_SUMMARY_COLUMNS,
    COMPARISON_COLUMNS,
    OVERALL_SUMMARY_COLUMNS,
    cohort_summary,
    fold_metrics,
    overall_summary,
    paired_comparisons,
    summary_markdown,
    validate_predictions,
)
from icb_kedro.schema import FOLD_METRIC_COLUMNS, METRICS

N_BOOT = 200


def test_fold_metrics_one_row_per_repeat_on_its_pooled_out_of_fold_predictions(predictions):
    table = fold_metrics(predictions)
    assert tuple(table.columns) == FOLD_METRIC_COLUMNS
    n_repeats = predictions.groupby(["model", "protocol", "cohort", "repeat"]).ngroups
    assert (
        len(table) == n_repeats == 3 * (3 * 2 + 3 + 3 * 2)
    )  # models x (transfer + loco + within repeats)
    row = table[
        (table["model"] == "good")
        & (table["protocol"] == "transfer")
        & (table["cohort"] == "CohortA")
        & (table["repeat"] == 1)
    ]
    pooled = predictions[
        (predictions["model"] == "good")
        & (predictions["protocol"] == "transfer")
        & (predictions["cohort"] == "CohortA")
        & (predictions["repeat"] == 1)
    ]
    assert (
        pooled["trial"].nunique() == 3 and pooled["sample_key"].is_unique
    )  # 3 splits, each patient once
    assert len(pooled) == 21  # every labelled patient of CohortA (9 R + 12 NR)
    expected = binary_metrics(pooled["y_true"], pooled["y_prob"], 0.5)
    assert row[list(METRICS)].iloc[0].to_dict() == pytest.approx(expected)
    mean_n_train = pooled.groupby("trial")["n_train"].first().mean()
    assert row[["n_test", "n_test_pos", "n_train"]].iloc[0].tolist() == [21, 9, round(mean_n_train)]


def test_pooled_rows_are_judged_by_their_own_splits_threshold(predictions):
    rows = predictions[
        (predictions["model"] == "good") & (predictions["protocol"] == "within")
    ].copy()
    rows["threshold"] = np.where(
        rows["trial"] % 3 == 0, 0.99, 0.01
    )  # split 0 calls nobody, the others everybody
    table = fold_metrics(rows).set_index(["cohort", "repeat"])
    for (cohort, repeat), group in rows.groupby(["cohort", "repeat"]):
        called = group["y_prob"] >= group["threshold"]
        recall = (called & (group["y_true"] == 1)).sum() / (group["y_true"] == 1).sum()
        assert table.loc[(cohort, repeat), "recall"] == pytest.approx(recall)


def test_fold_metrics_uses_the_fold_threshold(predictions):
    shifted = predictions.assign(threshold=0.99)
    assert (fold_metrics(shifted)["recall"] <= fold_metrics(predictions)["recall"]).all()
    assert fold_metrics(shifted)["auroc"].equals(fold_metrics(predictions)["auroc"])


def test_cohort_summary_columns_means_and_ci(predictions):
    table = cohort_summary(predictions, n_boot=N_BOOT, seed=1)
    assert tuple(table.columns) == COHORT_SUMMARY_COLUMNS
    assert len(table) == 3 * 3 * 3
    folds = fold_metrics(predictions)
    key = (
        (folds["model"] == "weak")
        & (folds["protocol"] == "within")
        & (folds["cohort"] == "CohortC")
    )
    row = table[
        (table["model"] == "weak")
        & (table["protocol"] == "within")
        & (table["cohort"] == "CohortC")
    ].iloc[0]
    assert row["n_repeats"] == 2
    assert row["auroc_mean"] == pytest.approx(folds.loc[key, "auroc"].mean())
    assert row["auroc_sd"] == pytest.approx(folds.loc[key, "auroc"].std(ddof=1))
    assert row["brier_mean"] == pytest.approx(folds.loc[key, "brier"].mean())
    loco = table[table["protocol"] == "loco"]
    assert (loco["n_repeats"] == 1).all() and loco["auroc_sd"].isna().all()
    assert (table["ci_low"] <= table["ci_high"]).all()
    assert (
        (table["ci_low"] <= table["auroc_mean"] + 1e-9)
        & (table["auroc_mean"] <= table["ci_high"] + 1e-9)
    ).mean() > 0.9
    # Deterministic given the seed; a cohort's resamples do not depend on the other models present.
    pd.testing.assert_frame_equal(table, cohort_summary(predictions, n_boot=N_BOOT, seed=1))
    alone = cohort_summary(
        predictions[predictions["model"] == "weak"], n_boot=N_BOOT, seed=1
    ).reset_index(drop=True)
    pd.testing.assert_frame_equal(alone, table[table["model"] == "weak"].reset_index(drop=True))


def test_overall_summary_is_unweighted_mean_over_cohorts(predictions):
    overall = overall_summary(predictions, n_boot=N_BOOT, seed=1)
    cohorts = cohort_summary(predictions, n_boot=N_BOOT, seed=1)
    assert tuple(overall.columns) == OVERALL_SUMMARY_COLUMNS
    assert len(overall) == 3 * 3
    row = overall[(overall["model"] == "good") & (overall["protocol"] == "transfer")].iloc[0]
    per_cohort = cohorts[(cohorts["model"] == "good") & (cohorts["protocol"] == "transfer")]
    assert row["n_cohorts"] == 3
    assert row["auroc_mean"] == pytest.approx(per_cohort["auroc_mean"].mean())
    assert row["f1_mean"] == pytest.approx(per_cohort["f1_mean"].mean())
    assert row["ci_low"] < row["auroc_mean"] < row["ci_high"]
    # Pooling three cohorts narrows the interval compared with the cohorts' own.
    assert row["ci_high"] - row["ci_low"] < (per_cohort["ci_high"] - per_cohort["ci_low"]).mean()


def test_paired_comparisons_columns_rows_and_significance(predictions):
    table = paired_comparisons(predictions, reference_model="random", n_boot=N_BOOT, seed=2)
    assert tuple(table.columns) == COMPARISON_COLUMNS
    assert set(table["model_b"]) == {"random"} and set(table["model_a"]) == {"good", "weak"}
    per_pair = table.groupby(["protocol", "model_a"])["cohort"].apply(list)
    assert all(cohorts == ["CohortA", "CohortB", "CohortC", ALL_COHORTS] for cohorts in per_pair)
    combined = table[(table["cohort"] == ALL_COHORTS) & (table["model_a"] == "good")]
    assert (combined["diff"] > 0).all() and combined["significant"].all()  # strong signal vs noise
    assert combined["q"].notna().all() and (combined["q"] >= combined["p"]).all()
    cohort_rows = table[table["cohort"] != ALL_COHORTS]
    np.testing.assert_allclose(
        cohort_rows["diff"], cohort_rows["auroc_a"] - cohort_rows["auroc_b"], atol=1e-12
    )
    all_pairs = paired_comparisons(predictions, n_boot=N_BOOT, seed=2)
    assert set(zip(all_pairs["model_a"], all_pairs["model_b"])) == {
        ("good", "random"),
        ("good", "weak"),
        ("random", "weak"),
    }
    # Several references: every unordered pair once (no mirrored duplicate with the sign
    # flipped), and one BH family per protocol over all of them.
    two_refs = paired_comparisons(
        predictions, reference_model=["random", "weak"], n_boot=N_BOOT, seed=2
    )
    assert set(zip(two_refs["model_a"], two_refs["model_b"])) == {
        ("good", "random"),
        ("weak", "random"),
        ("good", "weak"),
    }
    from icb_kedro.evaluation.statistics import bh_adjust

    for _, family in two_refs[two_refs["cohort"] == ALL_COHORTS].groupby("protocol"):
        np.testing.assert_allclose(family["q"], bh_adjust(family["p"].to_numpy()))


def test_cohort_differences_pool_by_random_effects():
    from icb_kedro.evaluation.statistics import combine_cohort_differences
    from icb_kedro.evaluation.summary import combine_differences_random_effects

    ses = np.array([0.05, 0.08, 0.1, 0.06])
    same = combine_differences_random_effects(
        [0.1, 0.1, 0.1, 0.1], ses
    )  # no heterogeneity: tau² = 0
    fixed = combine_cohort_differences([0.1, 0.1, 0.1, 0.1], ses)
    assert (
        same["tau2"] == 0
        and same["diff"] == pytest.approx(fixed.diff)
        and same["se"] == pytest.approx(fixed.se)
    )
    spread = combine_differences_random_effects([0.3, -0.2, 0.25, -0.15], ses)  # opposite effects
    fixed = combine_cohort_differences([0.3, -0.2, 0.25, -0.15], ses)
    assert (
        spread["tau2"] > 0
        and spread["i2"] > 0.5
        and spread["se"] > fixed.se
        and spread["p"] > fixed.p
    )
    # DerSimonian-Laird by hand: Q, tau², weights 1 / (v + tau²).
    d, w = np.array([0.3, -0.2, 0.25, -0.15]), 1 / ses**2
    q = np.sum(w * (d - np.sum(w * d) / w.sum()) ** 2)
    tau2 = max(0.0, (q - 3) / (w.sum() - np.sum(w**2) / w.sum()))
    w_re = 1 / (ses**2 + tau2)
    assert spread["tau2"] == pytest.approx(tau2) and spread["diff"] == pytest.approx(
        np.sum(w_re * d) / w_re.sum()
    )
    one = combine_differences_random_effects([0.2, np.nan], [0.1, 0.1])  # one usable cohort: itself
    assert one["diff"] == pytest.approx(0.2) and one["n_cohorts"] == 1


def test_the_combined_row_is_the_random_effects_pool_of_the_cohort_rows(predictions):
    from icb_kedro.evaluation.summary import combine_differences_random_effects

    table = paired_comparisons(predictions, reference_model="random", n_boot=N_BOOT, seed=2)
    for (protocol, model), rows in table.groupby(["protocol", "model_a"]):
        cohorts, combined = (
            rows[rows["cohort"] != ALL_COHORTS],
            rows[rows["cohort"] == ALL_COHORTS].iloc[0],
        )
        expected = combine_differences_random_effects(cohorts["diff"], cohorts["se"])
        assert combined["diff"] == pytest.approx(expected["diff"]) and combined[
            "tau2"
        ] == pytest.approx(expected["tau2"])
        assert cohorts["tau2"].isna().all()


def test_identical_models_have_p_one_and_only_paired_samples_count(predictions):
    twin = predictions[predictions["model"] == "good"].assign(model="twin")
    both = pd.concat([predictions[predictions["model"] == "good"], twin])
    table = paired_comparisons(both, n_boot=N_BOOT)
    assert (table["diff"] == 0).all() and (
        table.loc[table["cohort"] != ALL_COHORTS, "p"] == 1
    ).all()
    assert not table["significant"].any()
    # Drop half of one cohort's transfer rows from the twin: only the samples both scored are
    # compared.
    transfer_a = twin[(twin["protocol"] == "transfer") & (twin["cohort"] == "CohortA")]
    dropped = transfer_a[transfer_a["sample_key"].str.endswith(("0", "2", "4"))]
    partial = pd.concat([predictions[predictions["model"] == "good"], twin.drop(dropped.index)])
    row = paired_comparisons(partial, n_boot=N_BOOT)
    row = row[(row["protocol"] == "transfer") & (row["cohort"] == "CohortA")].iloc[0]
    full_patients = transfer_a["sample_key"].nunique()
    assert (
        row["n_samples"] == transfer_a.drop(dropped.index)["sample_key"].nunique() < full_patients
    )


def test_cohorts_without_a_delong_test_are_reported_but_not_combined(make_folds, make_predictions):
    folds = make_folds(
        {"Big": (9, 12, 0), "Tiny": (3, 6, 0)}
    )  # Tiny's 80/20 test splits hold one responder
    predictions = make_predictions(
        folds, {"a": 1.0, "b": 0.0}, protocols=("transfer", "loco", "transfer_paper")
    )
    table = paired_comparisons(predictions, n_boot=N_BOOT)
    paper = table[table["protocol"] == "transfer_paper"].set_index("cohort")
    assert np.isfinite(paper.loc["Tiny", "diff"]) and np.isfinite(paper.loc["Tiny", "ci_low"])
    assert np.isnan(paper.loc["Tiny", "p"]) and not paper.loc["Tiny", "significant"]
    assert paper.loc[ALL_COHORTS, "n_cohorts"] == 1
    assert paper.loc[ALL_COHORTS, "diff"] == pytest.approx(paper.loc["Big", "diff"])
    # Out of fold, all 3 responders of Tiny are scored in every repeat: its test is estimable.
    for protocol in ("transfer", "loco"):
        rows = table[table["protocol"] == protocol].set_index("cohort")
        assert np.isfinite(rows.loc["Tiny", "p"]) and rows.loc[ALL_COHORTS, "n_cohorts"] == 2


def test_validation_errors(predictions):
    with pytest.raises(ValueError, match="lack columns"):
        fold_metrics(predictions.drop(columns="threshold"))
    with pytest.raises(ValueError, match="twice"):
        fold_metrics(pd.concat([predictions, predictions.head(1)]))
    with pytest.raises(ValueError, match="probability"):
        fold_metrics(predictions.assign(y_prob=predictions["y_prob"] * 3))
    with pytest.raises(ValueError, match="unknown protocols"):
        fold_metrics(predictions.assign(protocol="lodo"))
    varying = predictions.copy()
    varying.loc[varying.index[0], "n_train"] += 1
    with pytest.raises(ValueError, match="n_train and threshold must be constant within a split"):
        fold_metrics(varying)
    disagree = predictions.copy()
    first = disagree.index[disagree["model"] == "weak"][0]
    disagree.loc[first, "y_true"] = 1 - disagree.loc[first, "y_true"]
    with pytest.raises(ValueError, match="disagree"):
        paired_comparisons(disagree, n_boot=10)
    with pytest.raises(ValueError, match="reference model"):
        paired_comparisons(predictions, reference_model="absent", n_boot=10)
    assert validate_predictions(predictions)["y_true"].dtype == np.int8


def test_summary_markdown_reports_tables_significance_and_caveat(predictions):
    overall = overall_summary(predictions, n_boot=N_BOOT)
    cohorts = cohort_summary(predictions, n_boot=N_BOOT)
    comparisons = paired_comparisons(predictions, reference_model="random", n_boot=N_BOOT)
    text = summary_markdown(overall, cohorts, comparisons)
    for needle in (
        "### Protocol `transfer`",
        "### Protocol `loco`",
        "| model |",
        "CohortA",
        "good vs random",
        "0.042",
        "0.90",
    ):
        assert needle in text, needle
    assert (
        text.index("### Protocol `transfer`")
        < text.index("### Protocol `loco`")
        < text.index("### Protocol `within`")
    )
    quiet = summary_markdown(overall, cohorts, comparisons.assign(significant=False))
    assert "No paired AUROC difference is significant" in quiet
    assert "No paired comparisons were run" in summary_markdown(overall, cohorts, pd.DataFrame())
