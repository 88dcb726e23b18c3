"""Merging finished cells: their result tables pooled into the grid's ``results/`` (each
repeat's metrics recomputed from the pooled predictions of its cells)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from icb_kedro.evaluation.summary import fold_metrics
from icb_kedro.grid.cells import Grid
from icb_kedro.grid.layout import GridLayout
from icb_kedro.grid.manifest import (
    read_done,
)
from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS

MERGE_KEYS = ("model", "protocol", "cohort", "n_bins", "repeat", "trial")


REPEAT_KEYS = ("model", "protocol", "cohort", "repeat")


def merge_results(
    grid: Grid, layout: GridLayout, fingerprints: Mapping[str, str]
) -> dict[str, pd.DataFrame]:
    """Concatenate the result tables of every finished cell, write them to ``<root>/results/``.

    Adds ``n_bins`` (nullable) and ``cell_id`` after the schema columns. Two cells scoring the
    same patient in the same (model, protocol, cohort, n_bins, repeat) is a configuration
    error. With predictions among the results, ``fold_metrics`` is recomputed from the merged
    predictions (a K-fold repeat pools the splits of several cells; ``cell_id`` lists them).
    """
    parts: dict[str, list[pd.DataFrame]] = {}
    for cell in grid.cells:
        done = read_done(layout, cell.cell_id)
        if not done or done.get("fingerprint") != fingerprints[cell.cell_id]:
            continue
        for kind, rel in (done.get("results") or {}).items():
            table = pd.read_parquet(layout.cell_dir(cell.cell_id) / rel)
            table = table.assign(
                n_bins=pd.array([cell.n_bins] * len(table), dtype="Int64"), cell_id=cell.cell_id
            )
            parts.setdefault(kind, []).append(table)
    merged: dict[str, pd.DataFrame] = {}
    layout.results_dir.mkdir(parents=True, exist_ok=True)
    for kind, tables in parts.items():
        table = pd.concat(tables, ignore_index=True)
        schema = {"fold_metrics": FOLD_METRIC_COLUMNS, "predictions": PREDICTION_COLUMNS}.get(
            kind, ()
        )
        first = [c for c in schema if c in table.columns] + ["n_bins", "cell_id"]
        table = table[first + [c for c in table.columns if c not in first]]
        if kind == "predictions":
            keys = [
                c
                for c in ("model", "protocol", "cohort", "n_bins", "repeat", "sample_key")
                if c in table.columns
            ]
            dupes = table[table.duplicated(keys, keep=False)]
            if len(dupes):
                raise ValueError(
                    "grid results: the same patient is scored in one repeat by several cells "
                    f"{sorted(set(dupes['cell_id']))[:6]}; each fold must belong to one cell "
                    "(check the stages' selections)"
                )
        sort_keys = [c for c in (*MERGE_KEYS, "sample_key") if c in table.columns]
        table = table.sort_values(sort_keys, kind="stable").reset_index(drop=True)
        merged[kind] = table
    if "predictions" in merged:
        # A cell scores one split (trial); the metrics of a K-fold repeat need all its
        # splits' predictions pooled, so the merged table's metrics come from the merged
        # predictions, never from the cells' partial ones.
        parts_by_bins = []
        for n_bins, group in merged["predictions"].groupby("n_bins", dropna=False, sort=True):
            metrics = fold_metrics(group.drop(columns=["n_bins", "cell_id"]))
            # Provenance: the cell(s) whose predictions a repeat pools.
            cells = group.groupby(list(REPEAT_KEYS))["cell_id"].agg(
                lambda ids: ",".join(sorted(set(ids)))
            )
            metrics["n_bins"] = pd.array([n_bins] * len(metrics), dtype="Int64")
            metrics["cell_id"] = cells.reindex(
                pd.MultiIndex.from_frame(metrics[list(REPEAT_KEYS)])
            ).to_numpy()
            parts_by_bins.append(metrics)
        merged["fold_metrics"] = pd.concat(parts_by_bins, ignore_index=True)
    for kind, table in merged.items():
        table.to_parquet(layout.results_dir / f"{kind}.parquet", index=False)
    return merged
