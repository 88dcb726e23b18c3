"""Harmonization nodes on hand-made frames: exact scale change, labels, panels, corrections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.pipelines.harmonization.nodes import (
    build_gene_panels,
    build_harmonized_expression,
    combat_correct,
    log2_tpm_plus_one,
    response_labels,
    standardize_per_cohort,
    summarize_cohorts,
)
from icb_kedro.schema import gene_columns

RECIST = {"CR": 1, "PR": 1, "PD": 0}


def test_log2_scale_change_is_exact():
    tpm = np.array([0.0, 0.5, 1.0, 99.0, 1e5])
    on_disk = np.log2(tpm + 0.001)
    np.testing.assert_allclose(log2_tpm_plus_one(on_disk), np.log2(tpm + 1.0), rtol=0, atol=1e-9)
    assert log2_tpm_plus_one(np.array([np.log2(0.001)]))[0] == 0.0  # the floor is "not detected"


def test_response_labels_prefer_response_then_recist_sd_unlabelled():
    clinical = pd.DataFrame(
        {
            "response": ["R", "NR", None, None, None, "R"],
            "recist": ["PR", "PD", "CR", "PD", "SD", "SD"],
        }
    )
    labels = response_labels(clinical, RECIST)
    assert labels.tolist()[:4] == [1, 0, 1, 0]
    assert pd.isna(labels.iloc[4])  # SD without a response call stays unlabelled
    assert labels.iloc[5] == 1  # the curated response wins over RECIST


def test_response_recist_rule_is_the_strict_call():
    clinical = pd.DataFrame(
        {
            "response": ["R", "R", None, "NR"],
            "recist": ["SD", "PR", "PD", None],
            "response_recist": ["NR", "R", "NR", None],
        }
    )
    strict = response_labels(clinical, RECIST, "response_recist")
    assert strict.tolist()[:3] == [0, 1, 0] and pd.isna(
        strict.iloc[3]
    )  # a durable SD curated as R is NR here
    with pytest.raises(ValueError, match="harmonization.label"):
        response_labels(clinical, RECIST, "os")
    # A user's cohort file without the column: the strict call from its RECIST codes.
    derived = response_labels(clinical.drop(columns="response_recist"), RECIST, "response_recist")
    assert derived.tolist()[:3] == [0, 1, 0] and pd.isna(derived.iloc[3])


def _gene_major(sample_major: pd.DataFrame) -> pd.DataFrame:
    """Ingestion's partition layout: ``gene`` + one column per sample."""
    return sample_major.set_index("sample_id").T.rename_axis("gene").reset_index()


def cohort_frames():
    rng = np.random.default_rng(0)
    expr = {
        "A": _gene_major(
            pd.DataFrame(
                {
                    "sample_id": ["s1", "s2", "s3"],
                    "G1": rng.normal(2, 1, 3),
                    "G2": rng.normal(1, 1, 3),
                    "G3": [1.0, 2, 3],
                }
            )
        ),
        "B": _gene_major(
            pd.DataFrame(
                {"sample_id": ["s1", "s2"], "G1": rng.normal(5, 1, 2), "G2": rng.normal(4, 1, 2)}
            )
        ),
    }
    clin = {
        "A": pd.DataFrame(
            {
                "sample_id": ["s3", "s1", "s2"],
                "response": ["R", "NR", None],
                "recist": [None, None, "SD"],
            }
        ),
        "B": pd.DataFrame(
            {"sample_id": ["s1", "s2"], "response": ["NR", "R"], "recist": [None, None]}
        ),
    }
    return expr, clin


PRIOR = pd.DataFrame({"gene": ["G2", "G3", "G9", "G1"]})
AMU = pd.DataFrame({"sample_key": ["amu_000"], "label": [1], "G3": [0.5], "G1": [0.5]})


def test_harmonized_table_keys_labels_and_missing_genes_as_nan():
    expr, clin = cohort_frames()
    panels, _ = build_gene_panels(
        expr,
        PRIOR,
        AMU,
        {"panels": {"common": {}, "ic2bert_prior": {"genes": "ic2bert_prior", "present_in": 1}}},
    )
    table, clinical = build_harmonized_expression(expr, clin, panels, {"recist_labels": RECIST})
    assert gene_columns(table) == ["G1", "G2", "G3"]  # the union of the panels
    assert (
        table.loc[table.cohort == "B", "G3"].isna().all()
        and table.loc[table.cohort == "A", "G3"].notna().all()
    )
    assert table["sample_key"].tolist() == [
        "A:s1",
        "A:s2",
        "A:s3",
        "B:s1",
        "B:s2",
    ]  # unique across cohorts
    assert table["label"].tolist()[:2] == [0, None] or pd.isna(table["label"].iloc[1])
    assert (
        table.loc[table.sample_key == "A:s3", "label"].item() == 1
    )  # clinical rows aligned by id, not order
    np.testing.assert_allclose(
        table.loc[0, "G1"], log2_tpm_plus_one(expr["A"].set_index("gene").loc["G1", "s1"])
    )
    assert clinical["sample_key"].tolist() == table["sample_key"].tolist()


def test_gene_panels_keep_panel_order_and_report_missing_genes():
    expr, _ = cohort_frames()
    panels, coverage = build_gene_panels(
        expr, PRIOR, AMU
    )  # default: intersection / all but one cohort
    assert panels[panels.panel == "common"].gene.tolist() == ["G1", "G2"]
    assert panels[panels.panel == "ic2bert_prior"].gene.tolist() == [
        "G2",
        "G3",
        "G1",
    ]  # G3: in A only (1 of 2)
    assert panels[panels.panel == "amu160"].gene.tolist() == ["G3", "G1"]
    row = coverage[(coverage.panel == "ic2bert_prior") & (coverage.cohort == "B")].iloc[0]
    assert (
        row.missing_genes == "G3"
        and row.n_present == 2
        and row.n_panel == 3
        and row.n_requested == 4
    )
    strict, _ = build_gene_panels(
        expr,
        PRIOR,
        AMU,
        {
            "panels": {
                "common": {},
                "ic2bert_prior": {"genes": "ic2bert_prior", "present_in": "all"},
            }
        },
    )
    assert strict[strict.panel == "ic2bert_prior"].gene.tolist() == ["G2", "G1"]
    named, _ = build_gene_panels(
        expr,
        PRIOR,
        AMU,
        {
            "panels": {
                "common": {},
                "mine": {"genes": ["G3", "G2"], "present_in": {"all_but": ["B"]}},
            }
        },
    )
    assert named[named.panel == "mine"].gene.tolist() == ["G3", "G2"]
    with pytest.raises(ValueError, match="present_in"):
        build_gene_panels(
            expr, PRIOR, AMU, {"panels": {"common": {}, "bad": {"genes": "all", "present_in": 5}}}
        )
    with pytest.raises(ValueError, match="unknown gene list"):
        build_gene_panels(expr, PRIOR, AMU, {"panels": {"common": {}, "bad": {"genes": "nope"}}})


def labelled_table(seed=1):
    rng = np.random.default_rng(seed)
    n = 40
    cohort = np.repeat(["A", "B"], n // 2)
    shift = np.where(cohort == "A", 0.0, 3.0)
    table = pd.DataFrame(
        {
            "cohort": cohort,
            "sample_id": [f"s{i}" for i in range(n)],
            "label": pd.array(rng.integers(0, 2, n), dtype="Int8"),
        }
    )
    table["sample_key"] = table.cohort + ":" + table.sample_id
    for g in range(6):
        table[f"G{g}"] = rng.normal(shift * (g + 1) / 3, 1 + (cohort == "B"), n)
    table["CONST"] = 1.0
    return table


def test_standardize_per_cohort_is_label_free_and_zero_mean():
    table = labelled_table()
    z = standardize_per_cohort(table)
    means = z.groupby("cohort")[gene_columns(z)].mean().abs().to_numpy()
    assert means.max() < 1e-12
    assert (z["CONST"] == 0).all()
    flipped = table.assign(label=pd.array(1 - table["label"].astype(int), dtype="Int8"))
    pd.testing.assert_frame_equal(
        standardize_per_cohort(flipped).drop(columns="label"), z.drop(columns="label")
    )
    sds = z.groupby("cohort")[[g for g in gene_columns(z) if g != "CONST"]].std(ddof=0).to_numpy()
    np.testing.assert_allclose(sds, 1.0)


def test_standardize_per_cohort_refuses_missing_values_instead_of_filling_them():
    table = labelled_table()
    table.loc[5, "G2"] = np.nan
    with pytest.raises(
        ValueError,
        match=r"gene 'G2' is missing for some but not all samples of cohort 'A' \(first at row 5\)",
    ):
        standardize_per_cohort(table)


def test_genes_a_cohort_does_not_measure_stay_missing_through_standardization_and_combat():
    table = labelled_table()
    table.loc[table.cohort == "B", "G4"] = np.nan  # cohort B lacks G4
    z = standardize_per_cohort(table)
    assert z.loc[z.cohort == "B", "G4"].isna().all() and z.loc[z.cohort == "A", "G4"].notna().all()
    corrected = combat_correct(table, {"enabled": True})
    assert corrected.loc[corrected.cohort == "B", "G4"].isna().all()
    np.testing.assert_allclose(
        corrected.loc[corrected.cohort == "A", "G4"], table.loc[table.cohort == "A", "G4"]
    )  # one cohort: nothing to correct
    genes = ["G0", "G1", "G2", "G3", "G5"]
    without = combat_correct(labelled_table().drop(columns="G4"), {"enabled": True})
    np.testing.assert_allclose(
        corrected[genes], without[genes]
    )  # the measured-everywhere genes: one ComBat of their own


def test_combat_removes_cohort_shift_and_ignores_labels():
    table = labelled_table()
    corrected = combat_correct(table, {"enabled": True})
    genes = [g for g in gene_columns(table) if g != "CONST"]
    before = table.groupby("cohort")[genes].mean().diff().abs().iloc[1].mean()
    after = corrected.groupby("cohort")[genes].mean().diff().abs().iloc[1].mean()
    assert after < 0.1 * before
    assert (corrected["CONST"] == 1.0).all()  # constant genes are left as they are
    flipped = table.assign(label=pd.array(1 - table["label"].astype(int), dtype="Int8"))
    np.testing.assert_allclose(combat_correct(flipped, {"enabled": True})[genes], corrected[genes])
    assert combat_correct(table, {"enabled": False}).equals(table)


def test_cohort_summary_counts_the_labels_recist_gave() -> None:
    """An empty ``response`` takes a label from ``recist`` (CR/PR -> R, PD -> NR; SD stays
    unlabelled): the summary says how many, per cohort."""
    expr, clin = cohort_frames()
    clin["B"] = pd.DataFrame(
        {"sample_id": ["s1", "s2"], "response": [None, "R"], "recist": ["PD", None]}
    )
    params = {"recist_labels": RECIST, "panels": {"common": {}}}
    panels, coverage = build_gene_panels(expr, PRIOR, AMU, params)
    table, clinical = build_harmonized_expression(expr, clin, panels, params)
    report = pd.DataFrame({"cohort": ["A", "B"], "n_genes": [3, 2], "n_missing_values": [0, 0]})
    summary, _ = summarize_cohorts(table, clinical, report, coverage, params)
    counts = summary.set_index("cohort")
    assert counts["n_labelled_from_recist"].to_dict() == {"A": 0, "B": 1}  # A's SD: unlabelled
    assert counts.loc["B", "n_NR"] == 1 and counts.loc["A", "n_unlabelled"] == 1
