"""Parse and validate one expression file (gene-major log2(TPM + offset)): :func:`parse_expression`.

The one validation of expression input, shared by ingestion and ``predict``: header,
duplicate sample / gene ids, non-numeric cells, values impossible on the scale, samples with
no value at all, a scale that is in range but wrong (:func:`check_scale`), then the
missing-value policy (:func:`apply_missing_policy`). Every failure names file, column and row.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from icb_kedro.io.validation import LOG2_TPM_FLOOR, InputDataError
from icb_kedro.schema import SCALE_TOLERANCE, TPM_TOTAL, tpm_totals_over_limit

from .raw_tables import duplicate_positions, header_and_body

logger = logging.getLogger(__name__)

#: error | impute_gene_median | impute_floor (ingestion) | absent_genes (predict: a gene missing
#: in every sample is kept as NaN, an absent gene; a value missing in some samples only is an
#: error).
MISSING_POLICIES = ("error", "impute_gene_median", "impute_floor", "absent_genes")


#: Value scales of an expression file: name -> (TPM offset inside the log2, what it is called).
SCALES: dict[str, tuple[float, str]] = {
    "log2_tpm_milli": (0.001, "log2(TPM+0.001)"),  # the shared cohort files
    "log2_tpm1": (1.0, "log2(TPM+1)"),
}
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
    header, body = header_and_body(raw, source)
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
    dup_samples = duplicate_positions(samples)
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
    dup_genes = duplicate_positions(genes.tolist())
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
            f"  column (sample) {samples[r]!r}, row (gene) {genes.iloc[c]!r}: value "
            f"{float(numbers[c, r])}"
            for r, c in list(zip(rows, cols, strict=True))[:10]
        ]
        if len(rows) > 10:
            lines.append(f"  ... and {len(rows) - 10} more")
        with np.errstate(invalid="ignore"):
            if (numbers > high).any():
                lines.append(
                    f"  values above {ceiling:.2f} are impossible on this scale: raw TPM or "
                    "counts, not logged?"
                )
            if (numbers < low).any():
                lines.append(
                    f"  values below {floor:.3f} are impossible on this scale: another log "
                    "offset, or z-scores?"
                )
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
        smallest = float(numbers[r, c])
        likely = next(
            (
                f" It looks like {name}, whose floor {value:.3f} it has."
                for name, value in (("log2(TPM+1)", 0.0), ("ln(TPM+0.001)", float(np.log(0.001))))
                if abs(smallest - value) < FLOOR_TOLERANCE
            ),
            "",
        )
        state_scale = " (or state its scale, predict.input_scale)" if setting == "predict" else ""
        raise InputDataError(
            f"{source}: values do not look like {scale_name}: none is at its floor {floor:.3f} (a "
            "TPM of 0; 4-22 % of every shared cohort's values are); the smallest is "
            f"{smallest:.3f} (column (sample) {samples[c]!r}, row (gene) {genes[r]!r}).{likely} "
            "log2(TPM+1) bottoms out at 0, ln(TPM+0.001) at -6.908, log2(TPM+0.001) at -9.966: "
            f"convert the file{state_scale}, or set {setting}.scale_check: false if it truly "
            "holds no zero TPM."
        )
    totals, over = tpm_totals_over_limit(numbers, offset, axis=0)
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
