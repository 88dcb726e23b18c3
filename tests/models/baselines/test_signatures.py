"""Signature parsing, the coverage rule and scores checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.baselines import signature_coverage as sig_cov
from icb_kedro.models.baselines import signature_files as sig_files
from icb_kedro.models.baselines import signatures as sig

INFO = (
    "Signature\tmethod\tassociation\tPMID\n"
    "UP\tGSVA\tsensitive\t1\n"
    "DOWN\tGSVA\tresistance\t2\n"
    "WM\tweighted_mean\tresistance\t3\n"
    "COX_IS\tspecific\tresistance\t4\n"
    "IMPRES\tweighted_mean\tsensitive\t5\n"
    "TIDE\tspecific\tsensitive\t6\n"
)


def toy_files() -> dict[str, str]:
    return {
        "signature_INFO.txt": INFO,
        "UP.csv": "UP\nA\nB\n",
        "DOWN.csv": "gene\nC\nD\nE",  # no trailing newline, as several real files
        "WM.csv": "\ufeffgene;coef\nA;1\nB;-1\nZ;1\n",  # byte-order mark, as MPS.csv
        "COX_IS.csv": "gene;coef\nA;1\nIL8;1\nC;-1\nD ;-1\n",  # IL8 -> CXCL8, trailing blank
        "IMPRES.csv": "gene;coef\nA;1\n",  # replaced by the published pairs
    }


@pytest.fixture()
def toy_expression() -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """5 genes x 4 samples (2 cohorts): log2(TPM+1) values and within-cohort z-scores."""
    log_expr = pd.DataFrame(
        {
            "A": [5.0, 1.0, 2.0, 4.0],
            "B": [1.0, 2.0, 2.0, 1.0],
            "C": [4.0, 3.0, 1.0, 2.0],
            "D": [3.0, 4.0, 3.0, 2.0],
            "CXCL8": [2.0, 5.0, 4.0, 6.0],
        },
        index=pd.Index(["s1", "s2", "s3", "s4"], name="sample_key"),
    )
    cohorts = pd.Series(["X", "X", "Y", "Y"], index=log_expr.index)
    z = log_expr.groupby(cohorts.to_numpy()).transform(lambda v: (v - v.mean()) / v.std(ddof=0))
    return log_expr, z, cohorts


def test_parse_reads_every_layout_and_maps_aliases():
    table = sig_files.parse_signature_files(toy_files())
    assert list(table.columns) == list(sig_files.SIGNATURE_COLUMNS)
    methods = table.groupby("signature")["method"].first().to_dict()
    assert methods == {
        "COX_IS": "cox_is",
        "DOWN": "ssgsea",
        "IMPRES": "impres_pairs",
        "TIDE": "tide",
        "UP": "ssgsea",
        "WM": "weighted_mean",
    }
    cox = table[table.signature == "COX_IS"]
    assert cox["gene"].tolist() == ["A", "CXCL8", "C", "D"]  # alias applied, blank stripped
    assert cox.loc[cox.gene == "CXCL8", "source_gene"].item() == "IL8"
    assert table.loc[table.signature == "WM", "gene"].tolist() == ["A", "B", "Z"]  # BOM removed
    assert table.loc[table.signature == "DOWN", "gene"].tolist() == ["C", "D", "E"]
    assert (
        table[table.signature == "IMPRES"]["subset"].nunique() == len(sig_files.IMPRES_PAIRS) == 15
    )
    assert table.loc[table.signature == "TIDE", "gene"].tolist() == [""]  # INFO row, no file


def test_parse_rejects_malformed_files():
    with pytest.raises(ValueError, match="no signature_INFO.txt"):
        sig_files.parse_signature_files({"UP.csv": "UP\nA\n"})
    with pytest.raises(ValueError, match="has no row in signature_INFO.txt"):
        sig_files.parse_signature_files({**toy_files(), "NEW.csv": "gene\nA\n"})
    with pytest.raises(ValueError, match="coefficient 'x' is not a number"):
        sig_files.parse_signature_files({**toy_files(), "WM.csv": "gene;coef\nA;x\n"})
    with pytest.raises(ValueError, match="association 'maybe'"):
        sig_files.parse_signature_files(
            {**toy_files(), "signature_INFO.txt": INFO.replace("sensitive\t1", "maybe\t1")}
        )


def test_coverage_rule_reports_every_failure_with_a_reason():
    table = sig_files.parse_signature_files(toy_files())
    panel = ["A", "B", "C", "D", "CXCL8"]
    coverage = sig_cov.signature_coverage(
        table, panel, min_coverage=0.8, include_below_coverage=["IMPRES"]
    ).set_index("signature")
    assert coverage.loc["UP", "status"] == "scored" and coverage.loc["UP", "coverage"] == 1.0
    # DOWN: 2/3 genes (E missing) -> fails, and the reason names the count.
    assert coverage.loc["DOWN", "status"] == "failed"
    assert (
        "2/3 genes" in coverage.loc["DOWN", "reason"]
        and coverage.loc["DOWN", "missing_genes"] == "E"
    )
    # exactly 80% is not "more than 80%": WM has 2/3 -> failed; COX_IS 4/4 -> scored.
    assert coverage.loc["WM", "status"] == "failed"
    assert coverage.loc["COX_IS", "status"] == "scored"
    assert coverage.loc["IMPRES", "status"] == "failed"  # forced, but not one complete pair
    assert coverage.loc["TIDE", "status"] == "failed" and "TIDE" in coverage.loc["TIDE", "reason"]
    # With 2 of the 15 pairs complete, a forced IMPRES is scored and flagged.
    with_pairs = sig_cov.signature_coverage(
        table, [*panel, "PDCD1", "TNFSF4", "CD27"], include_below_coverage=["IMPRES"]
    )
    impres = with_pairs.set_index("signature").loc["IMPRES"]
    assert impres["status"] == "scored_below_coverage" and "2/15 gene pairs" in impres["reason"]
    strict = sig_cov.signature_coverage(table, [*panel, "PDCD1", "TNFSF4", "CD27"]).set_index(
        "signature"
    )
    assert strict.loc["IMPRES", "status"] == "failed"
    with pytest.raises(ValueError, match="unknown signatures"):
        sig_cov.signature_coverage(table, panel, include_below_coverage=["NOPE"])


def test_ssgsea_matches_the_hand_computed_enrichment_score():
    # s1: A=5 > C=4 > D=3 > E=2 > B=1, gene set {A, B}. gseapy ranks values (10000*rank/N),
    # weights hits by rank^0.25: A 10000^.25 = 10, B 2000^.25. Running sum over the 5 genes:
    # P_hit = p, p, p, p, 1 with p = 10 / (10 + 2000^.25); P_miss = 0, 1/3, 2/3, 1, 1.
    frame = pd.DataFrame(
        {"A": [5.0, 1.0], "B": [1.0, 2.0], "C": [4.0, 3.0], "D": [3.0, 4.0], "E": [2.0, 5.0]},
        index=["s1", "s2"],
    )
    scores = sig.ssgsea_scores(frame, {"AB": ["A", "B"]})
    p = 10 / (10 + 2000**0.25)
    assert scores.loc["s1", "AB"] == pytest.approx(4 * p - 2, abs=1e-6)
    # s2: E > D > C > B > A; hits B (4000^.25) then A (2000^.25), both at the bottom.
    q = 4000**0.25 / (4000**0.25 + 2000**0.25)
    assert scores.loc["s2", "AB"] == pytest.approx(-1 / 3 - 2 / 3 - 1 + (q - 1) + 0, abs=1e-6)
    # A sample's score does not depend on the other samples (leak-free, fold-independent).
    alone = sig.ssgsea_scores(frame.loc[["s1"]], {"AB": ["A", "B"]})
    assert alone.loc["s1", "AB"] == pytest.approx(scores.loc["s1", "AB"])


def test_weighted_mean_cox_is_and_impres_match_hand_computed_values(toy_expression):
    log_expr, z, cohorts = toy_expression
    wm = sig.weighted_mean_score(z, {"A": 1.0, "B": -1.0, "Z": 1.0})  # Z absent: divide by 2
    np.testing.assert_allclose(wm, (z["A"] - z["B"]) / 2)
    # s1 in cohort X: z_A = 1, z_B = -1 (two samples -> +-1) -> (1 - -1)/2 = 1.
    assert wm["s1"] == pytest.approx(1.0)

    ratio = sig.cox_is_ratio(log_expr, {"A": 1, "CXCL8": 1, "C": -1, "D": -1})
    assert ratio.tolist() == pytest.approx(
        [(5 + 2) / (4 + 3), (1 + 5) / (3 + 4), (2 + 4) / (1 + 3), (4 + 6) / (2 + 2)]
    )

    pairs = (("A", "B"), ("C", "D"), ("CXCL8", "MISSING"))
    count = sig.impres_pair_count(log_expr, pairs)
    # s1: A>B yes, C>D yes -> 2 of 2 available, rescaled to 3 pairs -> 3.0
    # s2: 1>2 no, 3>4 no -> 0; s3: 2>2 no (ties do not count), 1>3 no -> 0;
    # s4: 4>1 yes, 2>2 no -> 1.5
    assert count.tolist() == [3.0, 0.0, 0.0, 1.5]


def test_score_signatures_flips_resistance_and_zscores_cox_is_within_cohorts(toy_expression):
    log_expr, z, cohorts = toy_expression
    table = sig_files.parse_signature_files(toy_files())
    coverage = sig_cov.signature_coverage(
        table, list(log_expr.columns), include_below_coverage=["IMPRES"]
    )
    scores = sig.score_signatures(log_expr, z, cohorts, table, coverage)
    # DOWN, WM, TIDE fail coverage; IMPRES is forced but no published pair is in the toy panel.
    assert sorted(scores.columns) == ["sig_COX_IS", "sig_UP"]
    up = sig.ssgsea_scores(z, {"UP": ["A", "B"]})["UP"]
    np.testing.assert_allclose(scores["sig_UP"], up)  # sensitive: not flipped
    # COX_IS is a resistance signature: -1 x its within-cohort z-score. Cohort X ratios
    # 1.0 and 6/7 -> z = +1, -1 -> flipped -1, +1.
    assert scores.loc[["s1", "s2"], "sig_COX_IS"].tolist() == pytest.approx([-1.0, 1.0])
    assert scores.loc[["s3", "s4"], "sig_COX_IS"].tolist() == pytest.approx(
        [1.0, -1.0]
    )  # 1.5 < 2.5


def test_cox_is_with_undetected_effector_genes_is_an_error(toy_expression):
    log_expr, _, _ = toy_expression
    log_expr = log_expr.assign(C=0.0, D=0.0)
    with pytest.raises(ValueError, match="COX_IS undefined"):
        sig.cox_is_ratio(log_expr, {"A": 1, "C": -1, "D": -1})


def test_probability_map_is_monotone_and_fitted_on_given_rows_only():
    train = np.array([1.0, 2.0, 3.0, 4.0])
    location, scale = sig.fit_score_scale(train)
    assert (location, scale) == pytest.approx((2.5, np.std(train)))
    test = np.array([-100.0, 0.0, 2.5, 3.0, 1e6])
    prob = sig.scores_to_probability(test, location, scale)
    assert np.all(np.diff(prob) > 0) or np.all(np.diff(prob) >= 0)
    assert prob[2] == pytest.approx(0.5) and 0.0 <= prob.min() and prob.max() <= 1.0
    assert sig.fit_score_scale(np.array([3.0, 3.0])) == (3.0, 1.0)  # constant scores: unit scale
    with pytest.raises(ValueError, match="finite"):
        sig.fit_score_scale(np.array([1.0, np.nan]))
