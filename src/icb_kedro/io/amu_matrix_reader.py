"""Parse the AMU study's matrix (160 constituent ratios + label): :func:`parse_amu_matrix`.

Values are constituent ratios (each sample's 160 TPM values rescaled to sum to 1); the
parser checks the gene columns, numbers, 0/1 labels, the [0, 1] range and row sums, naming
file, column and line on failure.
"""

from __future__ import annotations

import pandas as pd

from icb_kedro.io.validation import InputDataError, find_non_numeric

from .raw_tables import duplicate_positions, header_and_body

#: Gene columns of the AMU study's matrix (its 160-mRNA panel).
AMU_N_GENES = 160


def parse_amu_matrix(
    raw: pd.DataFrame,
    source: str,
    label_column: str = "response",
    n_genes: int | None = AMU_N_GENES,
) -> pd.DataFrame:
    """AMU sample-major matrix (160 constituent-ratio columns + label) -> typed table.

    Values are constituent ratios: each sample's 160 TPM values rescaled to sum to 1. They
    are relative abundances, NOT TPM and not logged; models log them (see models/amu).
    """
    header, body = header_and_body(raw, source)
    if label_column not in header:
        raise InputDataError(f"{source}: no {label_column!r} column")
    dup = duplicate_positions(header)
    if dup:
        raise InputDataError(f"{source}: duplicate gene column(s) {sorted(dup)}")
    gene_headers = [h for h in header if h != label_column]
    if n_genes is not None and len(gene_headers) != n_genes:
        raise InputDataError(
            f"{source}: {len(gene_headers)} gene columns, the AMU study's matrix has {n_genes} "
            f"(constituent ratios of its {n_genes}-gene panel; rows sum to 1 only over all of them)"
        )
    body.index = pd.RangeIndex(2, len(body) + 2, name="line")
    bad = find_non_numeric(body)
    if len(bad):
        raise InputDataError(
            f"{source}: non-numeric value(s)\n"
            + "\n".join(
                f"  column {r['column']!r}, line {r['index']}: {r['failure_case']!r}"
                for r in bad.head(10).to_dict(orient="records")
            )
        )
    numbers = body.apply(pd.to_numeric, errors="coerce")
    labels = numbers.pop(label_column)
    bad_label = labels[~labels.isin([0, 1])]
    if len(bad_label):
        raise InputDataError(
            f"{source}: column {label_column!r} must be 0/1, lines {bad_label.index.tolist()[:10]} "
            f"hold {bad_label.tolist()[:10]}"
        )
    if numbers.isna().to_numpy().any():
        stacked = numbers.isna().stack()
        raise InputDataError(
            f"{source}: missing value(s) at (line, gene) {stacked[stacked].index.tolist()[:10]}"
        )
    out_of_range = (numbers < 0) | (numbers > 1)
    if out_of_range.to_numpy().any():
        stacked = out_of_range.stack()
        raise InputDataError(
            f"{source}: constituent ratios must lie in [0, 1]; (line, gene) "
            f"{stacked[stacked].index.tolist()[:10]}"
        )
    sums = numbers.sum(axis=1)
    off = sums[(sums - 1).abs() > 5e-3]
    if len(off):
        raise InputDataError(
            f"{source}: rows must sum to 1 (constituent ratios); lines {off.index.tolist()[:10]} "
            f"sum to {off.round(4).tolist()[:10]}"
        )
    table = numbers.astype("float64").reset_index(drop=True)
    table.insert(0, "label", labels.astype("Int8").to_numpy())
    table.insert(0, "sample_key", [f"amu_{i:03d}" for i in range(len(table))])
    return table
