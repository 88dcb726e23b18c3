"""Input validation: pandera schemas and errors that name the file, column and row.

Every check raises :class:`InputDataError` whose message starts with the file path and
lists each offending (column, row, value), so a user fixing their own cohort file knows
exactly where to look.
"""

from __future__ import annotations

import math

import pandas as pd
import pandera.pandas as pa

# log2(TPM + 0.001): TPM lies in [0, 1e6], so values outside these bounds are impossible.
LOG2_TPM_FLOOR = math.log2(0.001)  # -9.9658, "not detected"
LOG2_TPM_CEILING = math.log2(1e6 + 0.001)  # 19.93
SCALE_TOLERANCE = 1e-6

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
    """Re-raise pandera's lazy errors as one readable message naming file, column and row."""
    failures = err.failure_cases.copy()
    raise InputDataError(f"{source}: {len(failures)} invalid value(s)\n{_describe(failures, row_name)}") from err


CLINICAL_SCHEMA = pa.DataFrameSchema(
    columns={
        "sample_id": pa.Column(str, unique=True, nullable=False),
        "response": pa.Column(str, pa.Check.isin(RESPONSE_CODES), nullable=True),
        "recist": pa.Column(str, pa.Check.isin(RECIST_CODES), nullable=True, required=False),
        "survival_time_pfs": pa.Column(float, pa.Check.ge(0), nullable=True, required=False, coerce=True),
        "event_occurred_pfs": pa.Column(float, pa.Check.isin([0, 1]), nullable=True, required=False, coerce=True),
        "survival_time_os": pa.Column(float, pa.Check.ge(0), nullable=True, required=False, coerce=True),
        "event_occurred_os": pa.Column(float, pa.Check.isin([0, 1]), nullable=True, required=False, coerce=True),
    },
    strict=False,
)


def find_non_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """(column, row, value) of every entry that is present but not a number."""
    as_numbers = frame.apply(pd.to_numeric, errors="coerce")
    bad = as_numbers.isna() & frame.notna() & (frame.astype(str).apply(lambda s: s.str.strip()) != "")
    stacked = frame.where(bad).stack()
    return pd.DataFrame(
        {
            "column": stacked.index.get_level_values(1),
            "index": stacked.index.get_level_values(0),
            "failure_case": stacked.to_numpy(),
            "check": "is numeric",
        }
    )
