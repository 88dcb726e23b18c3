"""The coverage rule of the published signatures: which are scored on a gene panel, and why not.

Coverage rule (PredictioR): a signature is scored only if MORE than 80% of its genes
(``min_coverage``) are in the expression panel; ``ipres`` additionally drops sub-sets
with less than 80% and needs at least one; ``impres_pairs`` counts complete pairs. Fails
are reported in the coverage table (:func:`signature_coverage`, ``COVERAGE_COLUMNS``)
with the reason, never silently dropped.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

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


# PredictioR's IPS returns NA with fewer genes (signatures_and_statistics.md, section 3).
IPS_MIN_GENES = 10_000


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
