"""Over-representation of top genes in the shipped ICB signature gene sets.

Gene-set dictionary: the 39 published signatures in ``<data>/signatures`` (parsed by
:func:`parse_signature_gene_sets`; ``signature_INFO.txt`` is metadata, not a set). The
AMU paper ran GO enrichment online; offline, the signature sets are the dictionary.

Test: one-sided hypergeometric over-representation computed by ``gseapy.enrich`` with a
gene-set dictionary and an explicit background, the input gene panel the models saw (the
only genes that could ever be "top"). Using the whole genome as background would inflate
every immune set, because the panels are themselves immune-biased. gseapy only reports
sets with at least one hit and adjusts over those; here BH (scipy) is recomputed over
every set with at least one background gene, hits or not, and sets without background
genes are listed as untested instead of being dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

METADATA_FILES: frozenset[str] = frozenset({"signature_INFO"})
ENRICHMENT_COLUMNS: tuple[str, ...] = (
    "gene_set",
    "set_size",
    "overlap",
    "query_size",
    "background_size",
    "odds_ratio",
    "p_value",
    "q_value",
    "tested",
    "genes",
)


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def parse_signature_file(name: str, text: str) -> list[str]:
    """Gene symbols of one signature file, whatever its layout.

    Layouts found in the shipped files: one gene per row under a header
    (``gene``/``Gene``/the set's name); ``gene;coef`` rows; IPRES's
    ``Geneset;Detail;gene.list`` (comma-separated genes of 18 sub-sets, united here); and
    the tab-separated ``IPS_genes.txt`` (column ``GENE``).
    """
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"signature file {name!r} has no gene rows")
    header = lines[0]
    if header.startswith("Geneset;Detail;gene.list"):
        rows = csv.reader(io.StringIO("\n".join(lines[1:])), delimiter=";", quotechar='"')
        genes = [g.strip() for row in rows if len(row) >= 3 for g in row[2].split(",")]
    elif "\t" in header:
        columns = header.split("\t")
        if "GENE" not in columns:
            raise ValueError(f"tab-separated signature file {name!r} has no GENE column: {columns}")
        at = columns.index("GENE")
        genes = [line.split("\t")[at].strip() for line in lines[1:]]
    else:
        genes = [line.split(";")[0].split(",")[0].strip().strip('"') for line in lines[1:]]
    genes = _unique(genes)
    if not genes:
        raise ValueError(f"signature file {name!r} has no genes")
    return genes


def parse_signature_gene_sets(files: Mapping[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """(gene sets by name, skipped metadata files) from {file name or stem: text}.

    Names are file stems (``ADO.csv`` -> ``ADO``, ``IPS_genes.txt`` -> ``IPS_genes``).
    """
    sets: dict[str, list[str]] = {}
    skipped: list[str] = []
    for file_name in sorted(files):
        stem = PurePosixPath(file_name).name.split(".")[0]
        if stem in METADATA_FILES:
            skipped.append(file_name)
            continue
        if stem in sets:
            raise ValueError(f"two signature files share the name {stem!r}")
        sets[stem] = parse_signature_file(file_name, files[file_name])
    if not sets:
        raise ValueError("no signature gene sets found")
    return sets, skipped


def over_representation(
    query_genes: Sequence[str],
    gene_sets: Mapping[str, Sequence[str]],
    background: Sequence[str],
) -> pd.DataFrame:
    """Hypergeometric over-representation of ``query_genes`` in each set, BH-adjusted.

    ``background`` is the universe (the models' input panel); sets and query are
    restricted to it. Columns ``ENRICHMENT_COLUMNS``, sorted by p-value.
    """
    import gseapy
    from scipy.stats import false_discovery_control

    universe = _unique([str(g) for g in background])
    if len(universe) < 2:
        raise ValueError(f"background must hold at least 2 genes, got {len(universe)}")
    in_universe = set(universe)
    query = _unique([g for g in map(str, query_genes) if g in in_universe])
    outside = sorted(set(map(str, query_genes)) - in_universe)
    if outside:
        raise ValueError(
            f"{len(outside)} query genes are not in the background panel, e.g. {outside[:5]}"
        )
    if not query:
        raise ValueError("over_representation needs at least one query gene")

    restricted = {
        name: sorted(set(map(str, genes)) & in_universe) for name, genes in gene_sets.items()
    }
    testable = {name: genes for name, genes in restricted.items() if genes}
    hits = pd.DataFrame()
    if testable:
        result = gseapy.enrich(
            gene_list=query,
            gene_sets=testable,
            background=universe,
            outdir=None,
            no_plot=True,
            cutoff=1.0,
        )
        hits = (
            result.results.set_index("Term")
            if result.results is not None and len(result.results)
            else pd.DataFrame()
        )

    rows = []
    for name in sorted(restricted):
        members = restricted[name]
        overlap_genes = sorted(set(members) & set(query))
        row = {
            "gene_set": name,
            "set_size": len(members),
            "overlap": len(overlap_genes),
            "query_size": len(query),
            "background_size": len(universe),
            "odds_ratio": np.nan,
            "p_value": np.nan,
            "q_value": np.nan,
            "tested": bool(members),
            "genes": ";".join(overlap_genes),
        }
        if members:
            if name in hits.index:
                row["p_value"] = float(hits.loc[name, "P-value"])
                row["odds_ratio"] = float(hits.loc[name, "Odds Ratio"])
            else:  # no hit: P(X >= 0) = 1
                row["p_value"] = 1.0
                row["odds_ratio"] = 0.0
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(ENRICHMENT_COLUMNS))
    tested = table["tested"]
    if tested.any():
        table.loc[tested, "q_value"] = false_discovery_control(
            table.loc[tested, "p_value"].to_numpy(), method="bh"
        )
    return table.sort_values(
        ["p_value", "gene_set"], na_position="last", kind="mergesort"
    ).reset_index(drop=True)


def plot_enrichment(table: pd.DataFrame, title: str = "", max_sets: int = 20) -> Figure:
    """Bars of -log10(BH q) for the most enriched sets, annotated with overlap/set size."""
    shown = (
        table[table["tested"]].sort_values("p_value", kind="mergesort").head(max_sets).iloc[::-1]
    )
    fig = Figure(figsize=(7.0, 0.3 * max(len(shown), 1) + 1.6), layout="constrained")
    ax = fig.subplots()
    scores = -np.log10(shown["q_value"].clip(lower=1e-300).astype(float))
    ax.barh(
        shown["gene_set"], scores, color=np.where(shown["q_value"] < 0.05, "#c0392b", "#95a5a6")
    )
    for y, (score, overlap, size) in enumerate(zip(scores, shown["overlap"], shown["set_size"])):
        ax.text(score, y, f" {overlap}/{size}", va="center", fontsize=7)
    ax.axvline(-np.log10(0.05), color="black", lw=0.6, ls="--")
    background = int(table["background_size"].iloc[0]) if len(table) else 0
    ax.set_xlabel(f"-log10 BH q (background: {background} panel genes; dashed: q = 0.05)")
    ax.set_title(title or "Over-representation in ICB signature gene sets")
    return fig
