"""Survival endpoints of the clinical table, in months: :func:`survival_frame`.

The endpoints (OS, PFS) and their columns, the time units the cohorts record, and the
per-endpoint table (``cohort, sample_key, time`` in months, ``event`` 0/1) every survival
analysis of :mod:`icb_kedro.interpretation.survival` starts from. Samples without the
endpoint (missing time or event) are excluded and counted; nothing is dropped silently.
"""

from __future__ import annotations

import pandas as pd

from icb_kedro.schema import COHORT, SAMPLE_KEY

ENDPOINTS: dict[str, tuple[str, str]] = {
    "os": ("survival_time_os", "event_occurred_os"),
    "pfs": ("survival_time_pfs", "event_occurred_pfs"),
}
UNIT_TO_MONTHS: dict[str, float] = {
    "month": 1.0,
    "months": 1.0,
    "day": 1 / 30.4375,
    "days": 1 / 30.4375,
    "week": 7 / 30.4375,
    "weeks": 7 / 30.4375,
    "year": 12.0,
    "years": 12.0,
}


def survival_frame(clinical: pd.DataFrame, endpoint: str) -> tuple[pd.DataFrame, int]:
    """(``cohort, sample_key, time`` in months, ``event`` 0/1; number of samples excluded).

    Excluded: samples with a missing time or event for this endpoint. Raises on negative
    times, events other than 0/1, or unknown time units.
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")
    time_col, event_col = ENDPOINTS[endpoint]
    needed = [COHORT, SAMPLE_KEY, time_col, event_col, "survival_unit"]
    missing = [c for c in needed if c not in clinical.columns]
    if missing:
        raise ValueError(f"clinical table lacks columns {missing}")
    if clinical[SAMPLE_KEY].duplicated().any():
        raise ValueError("clinical table lists a sample_key twice")
    table = clinical[needed].copy()
    usable = table[time_col].notna() & table[event_col].notna()
    table = table[usable]
    units = table["survival_unit"].fillna("month").astype(str).str.strip().str.lower()
    unknown = sorted(set(units) - set(UNIT_TO_MONTHS))
    if unknown:
        raise ValueError(
            f"unknown survival_unit values {unknown}; expected one of {sorted(UNIT_TO_MONTHS)}"
        )
    time = table[time_col].astype(float) * units.map(UNIT_TO_MONTHS).to_numpy()
    if (time < 0).any():
        raise ValueError(
            f"{time_col} has negative times, e.g. sample "
            f"{table.loc[time < 0, SAMPLE_KEY].iloc[0]!r}"
        )
    event = table[event_col].astype(float)
    if not event.isin([0.0, 1.0]).all():
        raise ValueError(f"{event_col} must be 0/1, got {sorted(event.unique())[:5]}")
    out = pd.DataFrame(
        {
            COHORT: table[COHORT].to_numpy(),
            SAMPLE_KEY: table[SAMPLE_KEY].to_numpy(),
            "time": time.to_numpy(),
            "event": event.astype(int).to_numpy(),
        }
    )
    return out.reset_index(drop=True), int((~usable).sum())
