"""Raw cohort files as they arrive: partition loading and the header row.

Raw files arrive through Kedro ``PartitionedDataset``s read with ``header=None, dtype=str``
so that nothing is coerced or renamed behind our back (pandas would silently rename a
duplicated sample column ``Pt1`` to ``Pt1.1``): the header is row 0 and is checked by the
parsers (``expression_reader``, ``clinical_reader``, ``amu_matrix_reader``), which split it
off with ``header_and_body`` and find repeated ids with ``duplicate_positions``. A file that cannot
be read fails with an error naming it (:func:`load_partition`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError

from icb_kedro.io.validation import InputDataError


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


def header_and_body(raw: pd.DataFrame, source: str) -> tuple[list[str], pd.DataFrame]:
    if raw.shape[0] < 2:
        raise InputDataError(f"{source}: file has a header but no data rows")
    header = [str(h).strip() if pd.notna(h) else "" for h in raw.iloc[0].tolist()]
    body = raw.iloc[1:].reset_index(drop=True)
    body.columns = header
    return header, body


def duplicate_positions(values: list[str]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for pos, value in enumerate(values):
        seen.setdefault(value, []).append(pos)
    return {v: p for v, p in seen.items() if len(p) > 1}
