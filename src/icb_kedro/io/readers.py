"""Parse raw cohort files into typed tables; every failure names file, column and row.

Raw files arrive through Kedro ``PartitionedDataset``s read with ``header=None, dtype=str``
so that nothing is coerced or renamed behind our back (pandas would silently rename a
duplicated sample column ``Pt1`` to ``Pt1.1``): the header is row 0 and is checked here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
from kedro.io.core import DatasetError

from icb_kedro.io.validation import (
    CLINICAL_SCHEMA,
    LOG2_TPM_FLOOR,
    SCALE_TOLERANCE,
    InputDataError,
    find_non_numeric,
    raise_schema_errors,
)

logger = logging.getLogger(__name__)

#: error | impute_gene_median | impute_floor (ingestion) | absent_genes (predict: a gene missing
#: in every sample is kept as NaN, an absent gene; a value missing in some samples only is an
#: error).
MISSING_POLICIES = ("error", "impute_gene_median", "impute_floor", "absent_genes")


def materialize(partitions: Mapping[str, Any]) -> dict[str, Any]:
    """Call the lazy loaders of a PartitionedDataset (values that are already data pass)."""
    return {
        key: (value() if callable(value) else value) for key, value in sorted(partitions.items())
    }


def load_partition(loader: Callable[[], pd.DataFrame] | pd.DataFrame, source: str) -> pd.DataFrame:
    """Run one partition loader, turning any read failure into an error naming the file."""
    if not callable(loader):
        return loader
    try:
        return loader()
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        # Kedro wraps the reader's error in a DatasetError that dumps the dataset's settings
        # (load_args, protocol, ...) mid-message: report the underlying cause instead.
        cause = exc
        while isinstance(cause, DatasetError) and cause.__cause__ is not None:
            cause = cause.__cause__
        raise InputDataError(
            f"{source}: cannot read file ({type(cause).__name__}: {cause})"
        ) from exc


def _header_and_body(raw: pd.DataFrame, source: str) -> tuple[list[str], pd.DataFrame]:
    if raw.shape[0] < 2:
        raise InputDataError(f"{source}: file has a header but no data rows")
    header = [str(h).strip() if pd.notna(h) else "" for h in raw.iloc[0].tolist()]
    body = raw.iloc[1:].reset_index(drop=True)
    body.columns = header
    return header, body


def _duplicates(values: list[str]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for pos, value in enumerate(values):
        seen.setdefault(value, []).append(pos)
    return {v: p for v, p in seen.items() if len(p) > 1}


#: Value scales of an expression file: name -> (TPM offset inside the log2, what it is called).
SCALES: dict[str, tuple[float, str]] = {
    "log2_tpm_milli": (0.001, "log2(TPM+0.001)"),  # the shared cohort files
    "log2_tpm1": (1.0, "log2(TPM+1)"),
}
#: A sample's TPM values cannot sum above 1e6 (+ rounding of the values on file).
TPM_TOTAL = 1e6
TPM_TOTAL_TOLERANCE = 1e-3
FLOOR_TOLERANCE = 1e-3


def parse_expression(
    raw: pd.DataFrame,
    source: str,
    missing_policy: str = "error",
    scale: str = "log2_tpm_milli",
    scale_check: bool = True,
    setting: str = "ingestion",
) -> tuple[pd.DataFrame, dict]:
    """Gene-major table (``gene`` + one column per sample, log2(TPM + offset)) -> sample-major
    floats.

    The one validation of expression input, shared by ingestion and ``predict`` (same checks,
    same messages): header, duplicate sample / gene ids, non-numeric cells, values impossible
    on the scale, samples with no value at all, a scale that is in range but wrong
    (``scale_check``: ``check_scale``), then the missing-value policy.

    Returns the table (index ``sample_id``, one float64 column per gene) and a report of
    missing values and how the policy handled them (counted, never silently dropped).
    ``setting`` names the config section a user would change (``ingestion`` / ``predict``).
    """
    if missing_policy not in MISSING_POLICIES:
        raise ValueError(
            f"missing-value policy must be one of {MISSING_POLICIES}, got {missing_policy!r}"
        )
    if scale not in SCALES:
        raise ValueError(f"expression scale must be one of {sorted(SCALES)}, got {scale!r}")
    offset, scale_name = SCALES[scale]
    header, body = _header_and_body(raw, source)
    if not header or header[0] != "gene":
        raise InputDataError(
            f"{source}: first column must be 'gene' (gene-major layout), found {header[:1]}"
        )
    samples = header[1:]
    if any(s == "" for s in samples):
        raise InputDataError(
            f"{source}: empty sample id (or NA/NULL, which reads as missing) in the header at "
            f"column(s) {[i + 2 for i, s in enumerate(samples) if s == '']}"
        )
    dup_samples = _duplicates(samples)
    if dup_samples:
        where = {s: [p + 2 for p in pos] for s, pos in dup_samples.items()}
        raise InputDataError(
            f"{source}: duplicate sample id(s) in header (column numbers): {where}"
        )
    genes = body["gene"].fillna("").astype(str).str.strip()
    if (genes == "").any():
        lines = (np.flatnonzero(genes == "") + 2).tolist()
        raise InputDataError(
            f"{source}: column 'gene' is empty (or NA/NULL, which reads as missing) on line(s) "
            f"{lines[:10]}"
        )
    dup_genes = _duplicates(genes.tolist())
    if dup_genes:
        where = {g: [p + 2 for p in pos] for g, pos in list(dup_genes.items())[:10]}
        raise InputDataError(f"{source}: duplicate gene id(s) (file line numbers): {where}")
    # Vectorised over the whole matrix (a full transcriptome is ~20,000 genes x 100+ samples:
    # column-by-column pandas/pandera checks took ~12 s per cohort, this takes well under 1 s).
    text = body.drop(columns="gene").to_numpy(dtype=object)
    numbers = (
        pd.to_numeric(pd.Series(text.ravel()), errors="coerce")
        .to_numpy(np.float64)
        .reshape(text.shape)
    )
    present = pd.notna(text)
    suspect = np.isnan(numbers) & present
    if suspect.any():
        rows, cols = np.nonzero(suspect)
        blank = np.array([str(text[r, c]).strip() == "" for r, c in zip(rows, cols, strict=True)])
        rows, cols = rows[~blank], cols[~blank]
        if len(rows):
            raise InputDataError(
                f"{source}: {len(rows)} non-numeric value(s)\n"
                + "\n".join(
                    f"  column (sample) {samples[c]!r}, row (gene) {genes.iloc[r]!r}: "
                    f"{text[r, c]!r}"
                    for r, c in list(zip(rows, cols, strict=True))[:10]
                )
            )
    floor, ceiling = float(np.log2(offset)), float(np.log2(TPM_TOTAL + offset))
    low, high = floor - SCALE_TOLERANCE, ceiling + SCALE_TOLERANCE
    out_of_range = np.isinf(numbers) | (~np.isnan(numbers) & ((numbers < low) | (numbers > high)))
    if out_of_range.any():
        rows, cols = np.nonzero(out_of_range.T)  # sample-major, as the table below
        lines = [
            f"  column {genes.iloc[c]!r}, sample {samples[r]!r}: value {numbers[c, r]!r} fails "
            f"in_range({low}, {high})"
            for r, c in list(zip(rows, cols, strict=True))[:10]
        ]
        if len(rows) > 10:
            lines.append(f"  ... and {len(rows) - 10} more")
        raise InputDataError(
            f"{source} (values must be {scale_name} in [{floor:.3f}, {ceiling:.2f}]): "
            f"{len(rows)} invalid value(s)\n" + "\n".join(lines)
        )
    empty = np.isnan(numbers).all(axis=0)
    if empty.any():
        listed = {samples[i]: int(i) + 2 for i in np.flatnonzero(empty)[:10]}
        raise InputDataError(
            f"{source}: sample(s) with no value for any gene (sample: column number) {listed}"
        )
    if scale_check:
        check_scale(numbers, samples, genes.tolist(), source, scale, setting)
    table = pd.DataFrame(
        np.ascontiguousarray(numbers.T),
        index=pd.Index(samples, name="sample_id"),
        columns=genes.tolist(),
    )
    table.columns.name = None
    table, report = apply_missing_policy(table, missing_policy, source)
    return table, report


def check_scale(
    numbers: np.ndarray,
    samples: list[str],
    genes: list[str],
    source: str,
    scale: str,
    setting: str = "ingestion",
) -> None:
    """Values in range but on the wrong scale, for one file ([genes, samples] matrix).

    Two facts hold for every real log2(TPM + offset) file, checked on all 13 shared cohorts
    (full transcriptomes and Mariathasan's 1,768-gene panel): some values sit exactly at the
    floor log2(offset) (a TPM of 0: 4-22 % of each shared cohort's values, in every sample),
    and no sample's TPM values sum above 1e6. log2(TPM+1) given as log2(TPM+0.001) has no
    value below 0 and ln(TPM+0.001) bottoms out at -6.908: both fail the first test.
    """
    offset, scale_name = SCALES[scale]
    floor = float(np.log2(offset))
    measured = numbers[~np.isnan(numbers)]
    if not (np.abs(measured - floor) < FLOOR_TOLERANCE).any():
        r, c = np.unravel_index(np.nanargmin(numbers), numbers.shape)
        raise InputDataError(
            f"{source}: values do not look like {scale_name}: none is at its floor {floor:.3f} (a "
            "TPM of 0; 4-22 % of every shared cohort's values are); the smallest is "
            f"{numbers[r, c]:.3f} (column (sample) {samples[c]!r}, row (gene) {genes[r]!r}). "
            "log2(TPM+1) bottoms out at 0, ln(TPM+0.001) at -6.908, log2(TPM+0.001) at -9.966: "
            "convert the file (or state its scale, predict.input_scale), or set "
            f"{setting}.scale_check: false if it truly holds no zero TPM."
        )
    totals = np.nansum(np.exp2(numbers) - offset, axis=0)
    over = np.flatnonzero(totals > TPM_TOTAL * (1 + TPM_TOTAL_TOLERANCE))
    if len(over):
        listed = {samples[i]: round(float(totals[i])) for i in over[:10]}
        raise InputDataError(
            f"{source}: values do not look like {scale_name}: the TPM values of {len(over)} "
            f"sample(s) sum above 1e6 (sample: sum) {listed}, and TPM sums to at most 1e6 per "
            "sample. A file on another scale (log2(TPM+1) read as log2(TPM+0.001), or counts) does "
            f"this; convert it, or set {setting}.scale_check: false."
        )


def apply_missing_policy(
    table: pd.DataFrame, policy: str, source: str
) -> tuple[pd.DataFrame, dict]:
    """Handle missing expression values explicitly and report how many there were."""
    missing = table.isna()
    n_missing = int(missing.to_numpy().sum())
    report = {
        "n_missing_values": n_missing,
        "missing_policy": policy,
        "genes_with_missing": int(missing.any().sum()),
    }
    if n_missing == 0:
        return table, report
    if policy == "absent_genes":
        absent = missing.all(axis=0)
        partial = missing.loc[:, ~absent]
        if partial.to_numpy().any():
            stacked = partial.stack()
            cells = stacked[stacked].index.tolist()[:10]
            raise InputDataError(
                f"{source}: {int(partial.to_numpy().sum())} missing value(s) in genes other "
                f"samples measure, e.g. (sample, gene) {cells}; a gene is either measured in every "
                "sample or absent from all"
            )
        report["absent_genes"] = int(absent.sum())
        return table, report
    if policy == "error":
        stacked = missing.stack()
        cells = stacked[stacked].index.tolist()[:10]
        raise InputDataError(
            f"{source}: {n_missing} missing value(s), e.g. (sample, gene) {cells}. Set "
            "ingestion.missing_values.policy to 'impute_gene_median' or 'impute_floor' to "
            "accept them."
        )
    if policy == "impute_gene_median":
        medians = table.median(axis=0, skipna=True)
        all_missing = medians.index[medians.isna()].tolist()
        if all_missing:
            raise InputDataError(
                f"{source}: gene(s) missing in every sample, cannot impute: {all_missing[:10]}"
            )
        filled = table.fillna(medians)
    else:
        filled = table.fillna(LOG2_TPM_FLOOR)  # impute_floor: "not detected"
    logger.warning(
        "%s: %d missing value(s) in %d gene(s) imputed (%s), e.g. gene(s) %s",
        source,
        n_missing,
        report["genes_with_missing"],
        policy,
        missing.columns[missing.any()].tolist()[:5],
    )
    return filled, report


def parse_clinical(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Clinical TSV -> typed table; unknown response/RECIST codes and duplicates are errors."""
    header, body = _header_and_body(raw, source)
    if "sample_id" not in header:
        raise InputDataError(f"{source}: no 'sample_id' column (columns: {header})")
    dup = _duplicates(header)
    if dup:
        raise InputDataError(f"{source}: duplicate column name(s) {sorted(dup)}")
    body = body.apply(lambda s: s.str.strip() if s.dtype == object else s).replace({"": np.nan})
    body["sample_id"] = body["sample_id"].astype(str)
    dup_ids = _duplicates(body["sample_id"].tolist())
    if dup_ids:
        where = {s: [p + 2 for p in pos] for s, pos in dup_ids.items()}
        raise InputDataError(f"{source}: duplicate sample_id(s) (file line numbers): {where}")
    if "response" not in body.columns:
        body["response"] = np.nan
    body.index = pd.RangeIndex(2, len(body) + 2, name="line")  # file line numbers in messages
    try:
        typed = CLINICAL_SCHEMA.validate(body, lazy=True)
    except pa.errors.SchemaErrors as err:
        raise_schema_errors(err, source, "line")
    for col in ("age", "TMB_perMb"):
        if col in typed.columns:
            typed[col] = pd.to_numeric(typed[col], errors="coerce")
    return typed.reset_index(drop=True)


def check_samples_match(
    expression: pd.DataFrame, clinical: pd.DataFrame, expression_source: str, clinical_source: str
) -> None:
    """Every clinical sample has expression and the reverse; the cohort has labelled samples."""
    in_expr = set(expression.index)
    in_clin = set(clinical["sample_id"])
    only_clin = sorted(in_clin - in_expr)
    only_expr = sorted(in_expr - in_clin)
    if only_clin:
        raise InputDataError(
            f"{clinical_source}: sample_id(s) with no column in {expression_source}: "
            f"{only_clin[:10]}"
        )
    if only_expr:
        raise InputDataError(
            f"{expression_source}: sample column(s) with no row in {clinical_source}: "
            f"{only_expr[:10]}"
        )


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
    header, body = _header_and_body(raw, source)
    if label_column not in header:
        raise InputDataError(f"{source}: no {label_column!r} column")
    dup = _duplicates(header)
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
