"""Input validation: pandera schemas and errors that name the file, column and row.

Every check raises :class:`InputDataError` whose message starts with the file path and
lists each offending (column, row, value), so a user fixing their own cohort file knows
exactly where to look.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa

from icb_kedro.schema import TPM_TOTAL

# log2(TPM + 0.001): TPM lies in [0, 1e6], so values outside these bounds are impossible.
LOG2_TPM_FLOOR = math.log2(0.001)  # -9.9658, "not detected"
LOG2_TPM_CEILING = math.log2(TPM_TOTAL + 0.001)  # 19.93

logger = logging.getLogger(__name__)

RESPONSE_CODES = ("R", "NR")
RECIST_CODES = ("CR", "PR", "SD", "PD", "NE")
MAX_LISTED = 10


class InputDataError(ValueError):
    """A cohort file that cannot be used as is; the message says where and why."""


def _describe(failures: pd.DataFrame, row_name: str) -> str:
    lines = []
    for rec in failures.head(MAX_LISTED).to_dict(orient="records"):
        lines.append(
            f"  column {rec.get('column')!r}, {row_name} {rec.get('index')!r}: "
            f"value {rec.get('failure_case')!r} fails {rec.get('check')}"
        )
    more = len(failures) - MAX_LISTED
    if more > 0:
        lines.append(f"  ... and {more} more")
    return "\n".join(lines)


def raise_schema_errors(err: pa.errors.SchemaErrors, source: str, row_name: str) -> None:
    """Re-raise pandera's lazy errors as one readable message naming file, column and row
    (without pandera's own error chained: its JSON report repeated the same cases over ~100
    lines of the log)."""
    failures = err.failure_cases.copy()
    raise InputDataError(
        f"{source}: {len(failures)} invalid value(s)\n{_describe(failures, row_name)}"
    ) from None


CLINICAL_SCHEMA = pa.DataFrameSchema(
    columns={
        "sample_id": pa.Column(str, unique=True, nullable=False),
        "response": pa.Column(str, pa.Check.isin(RESPONSE_CODES), nullable=True),
        "recist": pa.Column(str, pa.Check.isin(RECIST_CODES), nullable=True, required=False),
        # the strict call (CR/PR vs SD/PD); derived from ``recist`` where a file has none
        "response_recist": pa.Column(
            str, pa.Check.isin(RESPONSE_CODES), nullable=True, required=False
        ),
        "survival_time_pfs": pa.Column(
            float, pa.Check.ge(0), nullable=True, required=False, coerce=True
        ),
        "event_occurred_pfs": pa.Column(
            float, pa.Check.isin([0, 1]), nullable=True, required=False, coerce=True
        ),
        "survival_time_os": pa.Column(
            float, pa.Check.ge(0), nullable=True, required=False, coerce=True
        ),
        "event_occurred_os": pa.Column(
            float, pa.Check.isin([0, 1]), nullable=True, required=False, coerce=True
        ),
    },
    strict=False,
)


def find_non_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """(column, row, value) of every entry that is present but not a number."""
    as_numbers = frame.apply(pd.to_numeric, errors="coerce")
    bad = (
        as_numbers.isna() & frame.notna() & (frame.astype(str).apply(lambda s: s.str.strip()) != "")
    )
    stacked = frame.where(bad).stack()
    return pd.DataFrame(
        {
            "column": stacked.index.get_level_values(1),
            "index": stacked.index.get_level_values(0),
            "failure_case": stacked.to_numpy(),
            "check": "is numeric",
        }
    )


_EXCEL_DATE = re.compile(
    r"^\d{1,2}-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)$", re.IGNORECASE
)


_VERSION_SUFFIX = re.compile(r"\.\d+$")


def gene_id_hint(genes: Iterable[str], others: set[str]) -> str:
    """The likely reason a cohort's gene ids do not match the other cohorts' (or '').

    Only ids no other cohort has count: the shared cohorts carry a few hundred Ensembl ids
    of their own (genes without a symbol), which are no mistake wherever they match.
    """
    unmatched = [g for g in genes if g not in others]
    upper_others = {g.upper() for g in others}
    case = [g for g in unmatched if g.upper() in upper_others]
    suffixed = [g for g in unmatched if _VERSION_SUFFIX.sub("", g) in others]
    ensembl = [g for g in unmatched if g.upper().startswith(("ENSG", "ENST")) and g not in suffixed]
    excel = [g for g in genes if _EXCEL_DATE.match(g)]
    hints = []
    if case:
        hints.append(
            f"{len(case)} id(s) match another cohort's only when case is ignored (e.g. "
            f"{case[:3]}): use HGNC symbols in upper case"
        )
    if suffixed:
        hints.append(
            f"{len(suffixed)} id(s) match another cohort's without their version suffix (e.g. "
            f"{suffixed[:3]}): remove the '.N'"
        )
    if ensembl:
        hints.append(
            f"{len(ensembl)} Ensembl id(s) (e.g. {ensembl[:3]}): map them to HGNC symbols, as the "
            "shared cohorts use"
        )
    if excel:
        hints.append(
            f"{len(excel)} Excel-mangled symbol(s) (e.g. {excel[:3]}, dates that were MARCHF1, "
            "SEPTIN2, ...)"
        )
    return "; ".join(hints)


def check_gene_overlap(
    genes_by_cohort: Mapping[str, Iterable[str]], sources: Mapping[str, str], min_fraction: float
) -> pd.DataFrame:
    """Each cohort's genes shared with the union of the other cohorts; stop below ``min_fraction``.

    A cohort whose ids do not match (lower case, Ensembl ids, Excel-mangled symbols) would
    otherwise shrink every gene panel to the intersection, or crash ComBat on an empty table.
    Returns (cohort, n_genes, n_shared, fraction_shared). Excel-mangled symbols in a cohort that
    passes are logged as a warning.
    """
    sets = {c: set(g) for c, g in genes_by_cohort.items()}
    rows, hints = [], {}
    for cohort, genes in sets.items():
        others = set().union(*(g for c, g in sets.items() if c != cohort))
        if not others:
            continue
        shared = len(genes & others)
        rows.append(
            {
                "cohort": cohort,
                "n_genes": len(genes),
                "n_shared": shared,
                "fraction_shared": shared / max(len(genes), 1),
            }
        )
        hints[cohort] = gene_id_hint(genes, others)
    table = pd.DataFrame(rows, columns=["cohort", "n_genes", "n_shared", "fraction_shared"])
    # The worst cohort first: with two cohorts either could be "the odd one"; with more, the
    # cohort whose ids match nobody's is the one named.
    for row in table.sort_values(["fraction_shared", "cohort"]).itertuples():
        hint = hints[row.cohort]
        if row.fraction_shared < min_fraction:
            raise InputDataError(
                f"{sources.get(row.cohort, row.cohort)}: cohort {row.cohort!r} shares "
                f"{row.n_shared} of its {row.n_genes} gene ids ({row.fraction_shared:.0%}) with "
                f"the other cohorts (minimum {min_fraction:.0%}, "
                "ingestion.min_gene_overlap)" + (f"; likely cause: {hint}" if hint else "")
            )
        if hint:
            logger.warning("%s: %s", sources.get(row.cohort, row.cohort), hint)
    return table


MIN_GENES_FOR_DUPLICATES = 100


def check_duplicate_samples(
    values: np.ndarray, keys: Sequence[str], min_correlation: float, block: int = 1024
) -> None:
    """Refuse samples that are copies of each other: Pearson r >= ``min_correlation`` between
    two rows of ``values`` (samples x genes every cohort measures, log2(TPM+1)).

    Why: the same patient under two ids (a cohort added twice, a renamed copy, one sample
    filed in two cohorts) puts a test patient into its own training rows, in LODOCV across
    cohorts and in K-fold within one. Distinct patients stay well below: on the 13 shared
    cohorts (1,719 genes) the largest r of 196,251 pairs is 0.981. Rows are compared in
    blocks of ``block`` (memory ~ block x samples). Over fewer than
    :data:`MIN_GENES_FOR_DUPLICATES` genes r does not tell copies from distinct patients
    (over 2 genes every r is +-1): the check is skipped with a warning.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.shape[1] < MIN_GENES_FOR_DUPLICATES:
        logger.warning(
            "duplicate-sample check skipped: %d genes every cohort measures (needs %d)",
            x.shape[1],
            MIN_GENES_FOR_DUPLICATES,
        )
        return
    centred = x - x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    unit = np.divide(centred, norms[:, None], out=np.zeros_like(centred), where=norms[:, None] > 0)
    pairs = []
    for start in range(0, len(unit), block):
        r = unit[start : start + block] @ unit.T
        for i, j in zip(*np.nonzero(r >= min_correlation), strict=True):
            if start + i < j:
                pairs.append((keys[start + i], keys[j], float(r[i, j])))
    if pairs:
        listed = "\n".join(f"  {a} ~ {b}: r = {r:.4f}" for a, b, r in pairs[:MAX_LISTED])
        more = f"\n  ... and {len(pairs) - MAX_LISTED} more" if len(pairs) > MAX_LISTED else ""
        raise InputDataError(
            f"harmonized_expression: {len(pairs)} pair(s) of samples with Pearson r >= "
            f"{min_correlation} over the {x.shape[1]} genes every cohort measures, i.e. the same "
            f"sample twice (a test patient would sit in its own training rows):\n{listed}{more}\n"
            "Remove the copies from the data folder, or raise "
            "harmonization.duplicate_correlation if they truly are different patients."
        )
