"""Signature parsing (every shipped layout) and hypergeometric over-representation."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy.stats import hypergeom

from icb_kedro.interpretation.enrichment import (
    over_representation,
    parse_signature_file,
    parse_signature_gene_sets,
    plot_enrichment,
)


def test_parse_every_layout():
    assert parse_signature_file("CYT.csv", "Gene\nPRF1\nGZMA") == ["PRF1", "GZMA"]
    assert parse_signature_file("MPS.csv", "\ufeffgene;coef\nAKR1C3;1\nCD4;-1\n") == [
        "AKR1C3",
        "CD4",
    ]
    ipres = (
        'Geneset;Detail;gene.list\nSET1;"a ""quoted"" detail; with semicolon";A,B,C\n'
        "SET2;plain;C,D\n"
    )
    assert parse_signature_file("IPRES.csv", ipres) == ["A", "B", "C", "D"]
    ips = "GENE\tNAME\tCLASS\tWEIGHT\nB2M\tB2M\tMHC\t1\nTAP1\tTAP1\tMHC\t1\nB2M\tB2M\tMHC\t1\n"
    assert parse_signature_file("IPS_genes.txt", ips) == ["B2M", "TAP1"]
    with pytest.raises(ValueError, match="no gene rows"):
        parse_signature_file("empty.csv", "gene\n")


def test_shipped_signatures_parse(shared_data_dir):
    folder = shared_data_dir / "signatures"
    files = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()}
    sets, skipped = parse_signature_gene_sets(files)
    assert skipped == ["signature_INFO.txt"]
    assert len(sets) == 39
    assert sets["CYT"] == ["PRF1", "GZMA"]
    assert len(sets["IPRES"]) > 600  # union of the 18 sub-sets (681 unique in the reference notes)
    assert "B2M" in sets["IPS_genes"]
    assert all(genes and all(isinstance(g, str) and g for g in genes) for genes in sets.values())


def test_planted_set_is_enriched_and_p_matches_hypergeometric():
    background = [f"G{i}" for i in range(200)]
    sets = {
        "planted": background[:20],
        "unrelated": background[100:140],
        "no_hit": background[150:160],
        "outside": ["X1", "X2"],
    }
    query = background[:12] + background[100:103]
    table = over_representation(query, sets, background).set_index("gene_set")
    assert table.index[0] == "planted"
    expected = hypergeom.sf(
        12 - 1, 200, 20, 15
    )  # P(X >= 12), X ~ hypergeometric(M=200, n=20, N=15)
    assert table.loc["planted", "p_value"] == pytest.approx(expected, rel=1e-6)
    assert table.loc["planted", "overlap"] == 12 and table.loc["planted", "set_size"] == 20
    assert table.loc["no_hit", "p_value"] == 1.0
    assert not table.loc["outside", "tested"] and np.isnan(
        table.loc["outside", "p_value"]
    )  # listed, not dropped
    tested = table[table["tested"]]
    # BH over the three tested sets (scipy's definition).
    from scipy.stats import false_discovery_control

    np.testing.assert_allclose(
        tested["q_value"], false_discovery_control(tested["p_value"].to_numpy(), method="bh")
    )
    assert table.loc["planted", "q_value"] < 1e-10
    assert (table["background_size"] == 200).all() and (table["query_size"] == 15).all()
    assert isinstance(plot_enrichment(table.reset_index()), Figure)


def test_query_outside_background_is_an_error():
    with pytest.raises(ValueError, match="not in the background"):
        over_representation(["A", "Z"], {"s": ["A", "B"]}, ["A", "B", "C"])
    with pytest.raises(ValueError, match="at least one query gene"):
        over_representation([], {"s": ["A"]}, ["A", "B"])
