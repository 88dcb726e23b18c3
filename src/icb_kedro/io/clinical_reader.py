"""Parse one clinical file (:func:`parse_clinical`) and match it to its expression file.

The clinical TSV becomes a typed table validated by ``CLINICAL_SCHEMA`` (unknown response /
RECIST codes and duplicates are errors, named by file line);
:func:`check_samples_match` requires every clinical sample to have expression and the
reverse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa

from icb_kedro.io.validation import CLINICAL_SCHEMA, InputDataError, raise_schema_errors

from .raw_tables import duplicate_positions, header_and_body


def _stripped(column: pd.Series) -> pd.Series:
    """Text cells without surrounding blanks; an empty cell is NaN (where() keeps the dtype:
    ``replace({"": nan})`` downcast with a pandas FutureWarning per column)."""
    if column.dtype != object:
        return column
    text = column.str.strip()
    return text.where(text != "", np.nan)


def parse_clinical(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """Clinical TSV -> typed table; unknown response/RECIST codes and duplicates are errors."""
    header, body = header_and_body(raw, source)
    if "sample_id" not in header:
        raise InputDataError(f"{source}: no 'sample_id' column (columns: {header})")
    dup = duplicate_positions(header)
    if dup:
        raise InputDataError(f"{source}: duplicate column name(s) {sorted(dup)}")
    body = body.apply(_stripped)
    body["sample_id"] = body["sample_id"].astype(str)
    dup_ids = duplicate_positions(body["sample_id"].tolist())
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
