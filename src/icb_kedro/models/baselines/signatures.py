"""Published ICB gene signatures: parsing, the coverage rule and training-free scoring.

The 39 gene-list files of ``<data>/signatures`` (bhklab icb_data_exploration_and_analysis)
plus ``signature_INFO.txt`` (method, association, PMID) become one long table
(:func:`parse_signature_files`), one row per (signature, subset, gene):

``signature, method, association, pmid, subset, gene, source_gene, weight``

Methods (``SCORING_METHODS``), all computed per sample, so scores need no training and
can be computed once for every sample and reused in every fold (no leakage possible):

- ``ssgsea``: single-sample GSEA (Barbie et al. 2009) of a plain gene list with gseapy
  (an in-memory gene-set dict, offline). INFO says ``GSVA``: GSVA estimates a kernel CDF
  of each gene *across samples*, so a sample's score depends on which other samples are
  in the matrix; ssGSEA ranks genes within one sample only, so it is leak-free and
  fold-independent. It runs on the within-cohort z-scored matrix, as PredictioR runs
  GSVA on its gene-wise z-scored matrix (signatures_and_statistics.md, section 3).
- ``weighted_mean``: sum of (within-cohort gene z-score x +-1 weight) / number of
  signature genes present (PredictioR ``geneSigMean``).
- ``cox_is``: mean log2(TPM+1) of the +1 genes divided by the mean of the -1 genes, then
  z-scored within the cohort (PredictioR ``geneSigCOX_IS``; it used log2(TPM+0.001), whose
  negative values make a ratio meaningless, so the non-negative log2(TPM+1) is used here).
- ``ipres``: mean over the qualifying sub-sets of their ssGSEA scores (``geneSigIPRES``).
- ``impres_pairs``: IMPRES as published (Auslander 2018; EaSIeR ``compute_IMPRES_MSI``):
  the number of the 15 checkpoint gene pairs with expr(A) > expr(B) on log2(TPM+1),
  rescaled to 15 pairs when some are absent (EaSIeR's rule). INFO lists IMPRES as a
  +-1 weighted mean of 28 genes; that version is not the published score (and scores
  AUC 0.40 here, signatures_and_statistics.md section 3), so the pairs replace it.

Direction: ``resistance`` signatures are multiplied by -1 so that a higher score always
means "more likely responder".

Coverage rule (PredictioR): a signature is scored only if MORE than 80% of its genes
(``min_coverage``) are in the expression panel; ``ipres`` additionally drops sub-sets
with less than 80% and needs at least one; ``impres_pairs`` counts complete pairs. Fails
are reported in the coverage table with the reason, never silently dropped.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

INFO_FILE = "signature_INFO.txt"
IPS_FILE = "IPS_genes.txt"
SIGNATURE_COLUMNS: tuple[str, ...] = (
    "signature",
    "method",
    "association",
    "pmid",
    "subset",
    "gene",
    "source_gene",
    "weight",
)
COVERAGE_COLUMNS: tuple[str, ...] = (
    "signature",
    "method",
    "association",
    "n_genes",
    "n_present",
    "coverage",
    "status",
    "reason",
    "missing_genes",
)
SCORING_METHODS: tuple[str, ...] = (
    "ssgsea",
    "weighted_mean",
    "cox_is",
    "ipres",
    "impres_pairs",
    "ips",
    "tide",
)
ASSOCIATIONS: tuple[str, ...] = ("sensitive", "resistance")
MODEL_PREFIX = "sig_"

# Symbols in the signature files that are not the data's HGNC symbols. Kept small and
# explicit (signatures_and_statistics.md, section 2): IL8 is CXCL8 (renamed), MA4A1 and
# D68 are typos of MS4A1 (B_cell_Budczies) and CD68 (Macrophage). Outdated symbols that
# the stats document does not list (e.g. C10orf54/VSIR) are left as they are.
GENE_ALIASES: dict[str, str] = {"IL8": "CXCL8", "MA4A1": "MS4A1", "D68": "CD68"}

# INFO's method names -> the scoring method used here (see the module docstring).
_METHOD_OF_INFO = {"GSVA": "ssgsea", "weighted_mean": "weighted_mean"}
_SPECIFIC_METHODS = {
    "COX_IS": "cox_is",
    "IPRES": "ipres",
    "IPS": "ips",
    "TIDE": "tide",
    "IMPRES": "impres_pairs",
}
# NonResponse_SF has a gene file but no INFO row; its name and source (Sade-Feldman
# non-response genes) make it a resistance list scored like the other plain lists.
_MISSING_INFO = {"NonResponse_SF": ("GSVA", "resistance", "")}

# IMPRES (Auslander et al. 2018, PMID 30127394): 15 pairs (A, B); a pair counts when
# expr(A) > expr(B). Pairs and orientation as EaSIeR's compute_IMPRES (Gene_1 > Gene_2) and
# the IMPRES correspondence code (Carter et al.) define them. signatures_and_statistics.md
# section 3 writes the first and third as "PDCD1<TNFSF4" and "CTLA4<TNFSF4"; both sources
# above have PDCD1 > TNFSF4 and CTLA4 > TNFSF4, which is what is used here.
IMPRES_PAIRS: tuple[tuple[str, str], ...] = (
    ("PDCD1", "TNFSF4"),
    ("CD27", "PDCD1"),
    ("CTLA4", "TNFSF4"),
    ("CD40", "CD28"),
    ("CD86", "TNFSF4"),
    ("CD28", "CD86"),
    ("CD80", "TNFSF9"),
    ("CD274", "VSIR"),
    ("CD86", "HAVCR2"),
    ("CD40", "PDCD1"),
    ("CD86", "CD200"),
    ("CD40", "CD80"),
    ("CD28", "CD276"),
    ("CD40", "CD274"),
    ("TNFRSF14", "CD86"),
)

# PredictioR's IPS returns NA with fewer genes (signatures_and_statistics.md, section 3).
IPS_MIN_GENES = 10_000


# ----------------------------------------------------------------------------- parsing


def _text_of(value: str | bytes | Callable[[], Any]) -> str:
    """Text of a partition: PartitionedDataset gives loaders; tests may give strings."""
    if callable(value):
        value = value()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"signature file content must be text, got {type(value).__name__}")
    return value.lstrip("\ufeff")  # MPS.csv starts with a UTF-8 byte-order mark


def _clean_symbol(symbol: str) -> str:
    return symbol.strip().strip('"').strip()


def parse_signature_info(text: str) -> pd.DataFrame:
    """``signature_INFO.txt`` -> ``signature, info_method, association, pmid`` (one row each)."""
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0][:3]] != ["Signature", "method", "association"]:
        raise ValueError(
            f"{INFO_FILE}: expected the header 'Signature, method, association, PMID'; "
            f"got {rows[:1]}"
        )
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 3:
            raise ValueError(f"{INFO_FILE} line {line}: expected 4 tab-separated fields, got {row}")
        association = row[2].strip()
        if association not in ASSOCIATIONS:
            raise ValueError(
                f"{INFO_FILE} line {line}: association {association!r} is not one of {ASSOCIATIONS}"
            )
        pmid = " ".join(row[3].split()) if len(row) > 3 else ""
        records.append(
            {
                "signature": row[0].strip(),
                "info_method": row[1].strip(),
                "association": association,
                "pmid": pmid,
            }
        )
    info = pd.DataFrame(records)
    duplicated = info["signature"].duplicated()
    if duplicated.any():
        raise ValueError(f"{INFO_FILE} lists {info['signature'][duplicated].tolist()} twice")
    return info


def _parse_gene_list(name: str, text: str) -> list[tuple[str, str, float]]:
    """A ``.csv`` signature: header row, then ``gene`` or ``gene;coef`` rows -> (subset, gene,
    weight)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise ValueError(f"signature file {name!r} has no gene rows")
    weighted = ";" in lines[0]
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = [f.strip() for f in line.split(";")]
        if weighted:
            if len(fields) != 2:
                raise ValueError(
                    f"signature file {name!r} line {number}: expected 'gene;coef', got {line!r}"
                )
            try:
                weight = float(fields[1])
            except ValueError:
                raise ValueError(
                    f"signature file {name!r} line {number}: coefficient {fields[1]!r} is "
                    "not a number"
                ) from None
        else:
            weight = 1.0
        rows.append(("", _clean_symbol(fields[0]), weight))
    return rows


def _parse_ipres(text: str) -> list[tuple[str, str, float]]:
    """``IPRES.csv``: ``Geneset;Detail;gene.list`` rows -> one subset per gene set."""
    reader = csv.reader(io.StringIO(text), delimiter=";", quotechar='"')
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["Geneset", "Detail", "gene.list"]:
        raise ValueError(f"IPRES.csv: expected the header 'Geneset;Detail;gene.list', got {header}")
    rows = []
    for number, fields in enumerate(reader, start=2):
        if not fields:
            continue
        if len(fields) != 3:
            raise ValueError(
                f"IPRES.csv line {number}: expected 3 ';'-separated fields, got {len(fields)}"
            )
        subset = fields[0].strip()
        genes = [_clean_symbol(g) for g in fields[2].split(",") if g.strip()]
        rows.extend((subset, gene, 1.0) for gene in dict.fromkeys(genes))
    return rows


def _parse_ips(text: str) -> list[tuple[str, str, float]]:
    """``IPS_genes.txt`` (``GENE NAME CLASS WEIGHT``): subset = class (MHC, CP, EC, SC)."""
    rows = list(csv.reader(io.StringIO(text), delimiter="\t"))
    if not rows or [c.strip() for c in rows[0]] != ["GENE", "NAME", "CLASS", "WEIGHT"]:
        raise ValueError(
            f"{IPS_FILE}: expected the header 'GENE NAME CLASS WEIGHT', got {rows[:1]}"
        )
    return [
        (r[2].strip(), _clean_symbol(r[0]), float(r[3])) for r in rows[1:] if r and r[0].strip()
    ]


def _scoring_method(signature: str, info_method: str) -> str:
    if signature in _SPECIFIC_METHODS:
        return _SPECIFIC_METHODS[signature]
    if info_method not in _METHOD_OF_INFO:
        raise ValueError(f"signature {signature!r}: unknown method {info_method!r} in {INFO_FILE}")
    return _METHOD_OF_INFO[info_method]


def parse_signature_files(files: Mapping[str, str | bytes | Callable[[], Any]]) -> pd.DataFrame:
    """Signature files (``{file name: text or loader}``, as a PartitionedDataset gives) -> long
    table.

    One row per (signature, subset, gene) with ``SIGNATURE_COLUMNS``; gene symbols are
    mapped through ``GENE_ALIASES`` (``source_gene`` keeps the file's symbol). Signatures
    listed in INFO without a gene file (TIDE) get one row with an empty gene, so the
    coverage table can report them.
    """
    by_stem = {name.rsplit("/", 1)[-1]: value for name, value in files.items()}
    info_key = next((k for k in by_stem if k.startswith(INFO_FILE.rsplit(".", 1)[0])), None)
    if info_key is None:
        raise ValueError(f"no {INFO_FILE} among the signature files {sorted(by_stem)}")
    info = parse_signature_info(_text_of(by_stem.pop(info_key))).set_index("signature")

    records = []
    seen = set()
    for key in sorted(by_stem):
        stem = key.split(".", 1)[0]
        text = _text_of(by_stem[key])
        if stem == "IPRES":
            signature, rows = "IPRES", _parse_ipres(text)
        elif key.startswith("IPS_genes"):
            signature, rows = "IPS", _parse_ips(text)
        else:
            signature, rows = stem, _parse_gene_list(key, text)
        if signature not in info.index and signature in _MISSING_INFO:
            method, association, pmid = _MISSING_INFO[signature]
            info.loc[signature] = {"info_method": method, "association": association, "pmid": pmid}
        if signature not in info.index:
            raise ValueError(f"signature file {key!r} has no row in {INFO_FILE}")
        seen.add(signature)
        meta = info.loc[signature]
        method = _scoring_method(signature, meta["info_method"])
        if method == "impres_pairs":  # the published pairs replace INFO's 28-gene weighted mean
            rows = [(f"{a}>{b}", gene, 1.0) for a, b in IMPRES_PAIRS for gene in (a, b)]
        for subset, gene, weight in rows:
            records.append(
                {
                    "signature": signature,
                    "method": method,
                    "association": meta["association"],
                    "pmid": meta["pmid"],
                    "subset": subset,
                    "gene": GENE_ALIASES.get(gene, gene),
                    "source_gene": gene,
                    "weight": float(weight),
                }
            )
    for signature in sorted(set(info.index) - seen):  # e.g. TIDE: INFO row, no gene file
        meta = info.loc[signature]
        records.append(
            {
                "signature": signature,
                "method": _scoring_method(signature, meta["info_method"]),
                "association": meta["association"],
                "pmid": meta["pmid"],
                "subset": "",
                "gene": "",
                "source_gene": "",
                "weight": np.nan,
            }
        )
    table = pd.DataFrame(records, columns=list(SIGNATURE_COLUMNS))
    bad_weights = table[
        (table["gene"] != "") & ~table["weight"].isin((-1.0, 1.0)) & (table["method"] != "ips")
    ]
    if len(bad_weights):
        raise ValueError(
            "signature weights must be +-1; got "
            f"{bad_weights[['signature', 'gene', 'weight']].head(3).to_dict('records')}"
        )
    return table


# ----------------------------------------------------------------------------- coverage


def _coverage_row(
    signature: str,
    rows: pd.DataFrame,
    genes: set[str],
    n_panel_genes: int,
    min_coverage: float,
    forced: set[str],
) -> dict:
    method, association = rows["method"].iloc[0], rows["association"].iloc[0]
    row = {"signature": signature, "method": method, "association": association}
    listed = rows[rows["gene"] != ""]
    if listed.empty:
        return {
            **row,
            "n_genes": 0,
            "n_present": 0,
            "coverage": np.nan,
            "status": "failed",
            "reason": "no gene file (TIDE needs its own model and reference data)",
            "missing_genes": "",
        }
    unique = list(dict.fromkeys(listed["gene"]))
    missing = [g for g in unique if g not in genes]
    row.update(
        n_genes=len(unique), n_present=len(unique) - len(missing), missing_genes=",".join(missing)
    )
    if method == "impres_pairs":
        complete = [
            s for s, pair in listed.groupby("subset", sort=False) if set(pair["gene"]) <= genes
        ]
        coverage = len(complete) / listed["subset"].nunique()
        what = f"{len(complete)}/{listed['subset'].nunique()} gene pairs present"
    elif method == "ipres":
        subset_coverage = listed.groupby("subset")["gene"].agg(
            lambda g: float(np.mean([x in genes for x in g]))
        )
        qualifying = int((subset_coverage >= min_coverage).sum())
        coverage = row["n_present"] / row["n_genes"]
        what = (
            f"{row['n_present']}/{row['n_genes']} genes present, "
            f"{qualifying}/{len(subset_coverage)} sub-sets with >= {min_coverage:.0%}"
        )
        if coverage > min_coverage and qualifying == 0:
            return {
                **row,
                "coverage": coverage,
                "status": "failed",
                "reason": f"{what}: no qualifying sub-set",
            }
    else:
        coverage = row["n_present"] / row["n_genes"]
        what = f"{row['n_present']}/{row['n_genes']} genes present"
    row["coverage"] = coverage
    if method == "ips" and n_panel_genes < IPS_MIN_GENES:
        return {
            **row,
            "status": "failed",
            "reason": (
                f"{what}, but IPS needs > {IPS_MIN_GENES:,} genes in the panel "
                f"(has {n_panel_genes:,})"
            ),
        }
    if method == "ips":
        # With full transcriptomes a panel can pass the gene rule, but the immunophenoscore
        # (its cell-type sample-wise z-score weighting) is not implemented: refused with the
        # reason, never scored as something else.
        return {
            **row,
            "status": "failed",
            "reason": f"{what}; the IPS immunophenoscore is not implemented here",
        }
    if method == "tide":
        return {**row, "status": "failed", "reason": "TIDE needs its own model and reference data"}
    if coverage > min_coverage:
        return {**row, "status": "scored", "reason": f"{what} (> {min_coverage:.0%})"}
    if signature in forced and coverage > 0:
        return {
            **row,
            "status": "scored_below_coverage",
            "reason": (
                f"{what} (<= {min_coverage:.0%}); scored anyway on request "
                "(params include_below_coverage)"
            ),
        }
    return {
        **row,
        "status": "failed",
        "reason": f"coverage {coverage:.0%} <= {min_coverage:.0%}: {what}",
    }


def signature_coverage(
    signatures: pd.DataFrame,
    panel_genes: list[str],
    min_coverage: float = 0.8,
    include_below_coverage: list[str] | None = None,
) -> pd.DataFrame:
    """One row per signature: genes present in ``panel_genes``, coverage, ``status`` and why.

    ``status`` is ``scored``, ``scored_below_coverage`` (coverage fails but the signature is
    named in ``include_below_coverage``) or ``failed``; ``reason`` says why in words.
    """
    if not 0.0 <= min_coverage < 1.0:
        raise ValueError(f"min_coverage must be in [0, 1), got {min_coverage}")
    forced = set(include_below_coverage or [])
    unknown = sorted(forced - set(signatures["signature"]))
    if unknown:
        raise ValueError(f"include_below_coverage names unknown signatures {unknown}")
    genes = set(panel_genes)
    rows = [
        _coverage_row(name, group, genes, len(genes), min_coverage, forced)
        for name, group in signatures.groupby("signature", sort=True)
    ]
    return pd.DataFrame(rows, columns=list(COVERAGE_COLUMNS))


# ----------------------------------------------------------------------------- scoring
# Every scorer takes sample-major frames (rows = samples, columns = genes)
# and returns one float per sample (a pd.Series on the same index), before direction.


def ssgsea_scores(
    expression: pd.DataFrame,
    gene_sets: Mapping[str, list[str]],
    weight: float = 0.25,
    threads: int = 1,
) -> pd.DataFrame:
    """Raw ssGSEA enrichment scores (gseapy, ``ES`` column), samples x gene sets.

    Genes are ranked within each sample over all columns of ``expression``; the score of
    a sample depends on that sample only. ``ES`` (not ``NES``): gseapy's NES divides by
    the range of ES over all samples in the call, i.e. depends on the other samples.
    """
    import gseapy  # lazy: gseapy pulls in plotting modules

    sets = {
        name: [g for g in genes if g in expression.columns] for name, genes in gene_sets.items()
    }
    empty = [name for name, genes in sets.items() if not genes]
    if empty:
        raise ValueError(f"ssGSEA gene sets with no gene in the expression matrix: {empty}")
    if expression.isna().any().any():
        raise ValueError("ssGSEA input has missing values")
    result = gseapy.ssgsea(
        data=expression.T,  # gseapy wants genes x samples
        gene_sets=sets,
        outdir=None,
        sample_norm_method="rank",
        correl_norm_type="rank",
        min_size=1,
        max_size=100_000,
        permutation_num=0,
        weight=weight,
        no_plot=True,
        threads=threads,
        seed=0,
        verbose=False,
    )
    scores = result.res2d.pivot(index="Name", columns="Term", values="ES").astype(float)
    scores = scores.reindex(index=expression.index.astype(str), columns=list(sets))
    if scores.isna().any().any():
        raise ValueError("gseapy returned no score for some (sample, gene set) pairs")
    scores.index = expression.index
    return scores


def weighted_mean_score(zscores: pd.DataFrame, weights: Mapping[str, float]) -> pd.Series:
    """sum(z_gene x weight) / number of present signature genes (PredictioR geneSigMean)."""
    present = [g for g in weights if g in zscores.columns]
    if not present:
        raise ValueError("weighted mean: no signature gene in the expression matrix")
    w = np.array([weights[g] for g in present], dtype=float)
    return pd.Series(zscores[present].to_numpy() @ w / len(present), index=zscores.index)


def cox_is_ratio(log_expression: pd.DataFrame, weights: Mapping[str, float]) -> pd.Series:
    """mean log2(TPM+1) of the +1 (COX/inflammatory) genes / mean of the -1 (effector) genes."""
    up = [g for g, w in weights.items() if w > 0 and g in log_expression.columns]
    down = [g for g, w in weights.items() if w < 0 and g in log_expression.columns]
    if not up or not down:
        raise ValueError(
            f"COX_IS needs genes of both signs; present: {len(up)} positive, {len(down)} negative"
        )
    numerator = log_expression[up].mean(axis=1)
    denominator = log_expression[down].mean(axis=1)
    zero = denominator <= 0
    if zero.any():
        raise ValueError(
            "COX_IS undefined: effector genes all undetected in samples "
            f"{denominator.index[zero].tolist()[:5]}"
        )
    return numerator / denominator


def impres_pair_count(
    log_expression: pd.DataFrame, pairs: tuple[tuple[str, str], ...] = IMPRES_PAIRS
) -> pd.Series:
    """Number of (higher, lower) pairs with expr(higher) > expr(lower), rescaled to ``len(pairs)``.

    Pairs with a missing gene are skipped and the count is scaled by
    ``len(pairs) / n_available`` (EaSIeR's rule), so scores stay on the 0-15 scale.
    """
    available = [
        (a, b) for a, b in pairs if a in log_expression.columns and b in log_expression.columns
    ]
    if not available:
        raise ValueError("IMPRES: no complete gene pair in the expression matrix")
    higher = log_expression[[a for a, _ in available]].to_numpy()
    lower = log_expression[[b for _, b in available]].to_numpy()
    count = (higher > lower).sum(axis=1)
    return pd.Series(count * len(pairs) / len(available), index=log_expression.index, dtype=float)


def zscore_within_groups(values: pd.Series, groups: pd.Series) -> pd.Series:
    """z-score of ``values`` within each group (population sd; constant groups -> 0)."""
    grouped = values.groupby(groups.to_numpy())
    centred = values - grouped.transform("mean")
    sd = grouped.transform(lambda v: v.std(ddof=0))
    return (centred / sd.where(sd > 0, 1.0)).where(sd > 0, 0.0)


def score_signatures(
    log_expression: pd.DataFrame,
    zscores: pd.DataFrame,
    cohorts: pd.Series,
    signatures: pd.DataFrame,
    coverage: pd.DataFrame,
    min_subset_coverage: float = 0.8,
    ssgsea_weight: float = 0.25,
) -> pd.DataFrame:
    """Scores (samples x ``sig_<NAME>``) of every signature whose coverage status starts with
    ``scored``.

    ``log_expression``: log2(TPM+1); ``zscores``: the same samples z-scored per gene within
    each cohort; both sample-major with the same index; ``cohorts``: cohort of each sample
    (for COX_IS's within-cohort z-score). Resistance signatures are multiplied by -1, so a
    higher score always means "more likely responder".
    """
    if not log_expression.index.equals(zscores.index) or not log_expression.index.equals(
        cohorts.index
    ):
        raise ValueError("log_expression, zscores and cohorts must share the same sample index")
    chosen = coverage.loc[coverage["status"].str.startswith("scored"), "signature"].tolist()
    by_name = {name: rows[rows["gene"] != ""] for name, rows in signatures.groupby("signature")}
    missing = sorted(set(chosen) - set(by_name))
    if missing:
        raise ValueError(
            f"coverage table names signatures absent from the signature table: {missing}"
        )

    # One ssGSEA call for every plain list and every qualifying IPRES sub-set.
    gene_sets: dict[str, list[str]] = {}
    ipres_subsets: dict[str, list[str]] = {}
    for name in chosen:
        rows = by_name[name]
        method = rows["method"].iloc[0]
        if method == "ssgsea":
            gene_sets[name] = list(dict.fromkeys(rows["gene"]))
        elif method == "ipres":
            for subset, sub in rows.groupby("subset", sort=True):
                present = sub["gene"].isin(zscores.columns).mean()
                if present >= min_subset_coverage:
                    key = f"{name}::{subset}"
                    gene_sets[key] = list(dict.fromkeys(sub["gene"]))
                    ipres_subsets.setdefault(name, []).append(key)
    enrichment = (
        ssgsea_scores(zscores, gene_sets, weight=ssgsea_weight)
        if gene_sets
        else pd.DataFrame(index=zscores.index)
    )

    scores = {}
    for name in chosen:
        rows = by_name[name]
        method = rows["method"].iloc[0]
        weights = dict(zip(rows["gene"], rows["weight"]))
        if method == "ssgsea":
            raw = enrichment[name]
        elif method == "ipres":
            raw = enrichment[ipres_subsets[name]].mean(axis=1)
        elif method == "weighted_mean":
            raw = weighted_mean_score(zscores, weights)
        elif method == "cox_is":
            raw = zscore_within_groups(cox_is_ratio(log_expression, weights), cohorts)
        elif method == "impres_pairs":
            raw = impres_pair_count(log_expression)
        else:
            raise ValueError(f"signature {name!r}: method {method!r} cannot be scored here")
        direction = -1.0 if rows["association"].iloc[0] == "resistance" else 1.0
        scores[MODEL_PREFIX + name] = direction * raw.astype(float)
    return pd.DataFrame(scores, index=log_expression.index)


# ----------------------------------------------------------------------------- to probabilities


def fit_score_scale(train_scores: np.ndarray) -> tuple[float, float]:
    """Location and scale of a signature score on a fold's TRAINING rows (label-free).

    Used by :func:`scores_to_probability`: a fixed signature is a ranking rule, so it is
    not refitted on labels (a logistic regression could flip its published direction);
    only its scale is set so that probabilities are spread around 0.5.
    """
    values = np.asarray(train_scores, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("signature scores of the training rows must be finite and non-empty")
    sd = float(values.std())
    return float(values.mean()), sd if sd > 0 else 1.0


def scores_to_probability(scores: np.ndarray, location: float, scale: float) -> np.ndarray:
    """sigmoid((score - location) / scale): monotone, so AUROC/AUPRC are the score's own.

    The result is NOT a calibrated probability: Brier scores of signature "models" are
    reported for completeness but are not meaningful.
    """
    from scipy.special import expit  # overflow-safe logistic

    return expit((np.asarray(scores, dtype=float) - location) / scale)
