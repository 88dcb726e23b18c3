"""The grid's manifest and resume state: each cell's fingerprint (its spec, conf/ and data,
the parameters its pipelines read, its dependencies), ``grid.json`` and the ``DONE.json``
markers a resumed run checks."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from icb_kedro.grid.cells import Cell, Grid, fingerprint
from icb_kedro.grid.layout import MANIFEST_FILE, GridLayout, atomic_write_text
from icb_kedro.grid.session import cell_config

logger = logging.getLogger(__name__)


def cell_fingerprints(
    grid: Grid, layout: GridLayout, parameter_fps: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Per cell: hash of its spec, the config/data fingerprint, the parameters its pipelines
    read (``parameter_fps`` by ``model.stage``) and its dependencies' fingerprints."""
    fps: dict[str, str] = {}
    parameter_fps = parameter_fps or {}
    for cell in grid.cells:
        fps[cell.cell_id] = fingerprint(
            cell.spec_hash(),
            layout.config_fingerprint,
            parameter_fps.get(f"{cell.model}.{cell.stage}", ""),
            [fps[d] for d in cell.depends_on],
        )
    return fps


@contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pipeline_parameter_keys(pipeline_names: tuple[str, ...], layout: GridLayout) -> set[str] | None:
    """Top-level parameter keys the registered pipelines read (``params:<key>...`` inputs).

    None when a pipeline reads all ``parameters`` or cannot be built (then every
    parameter counts). Pipelines are built with the cells' environment (cohort list).
    """
    from kedro.framework.project import configure_project, pipelines

    keys: set[str] = set()
    try:
        with _environ(layout.environ):
            configure_project("icb_kedro")
            pipelines.set_requested(list(pipeline_names))
            for name in pipeline_names:
                for dataset in pipelines[name].inputs():
                    if dataset == "parameters":
                        return None
                    if dataset.startswith("params:"):
                        keys.add(dataset[len("params:") :].split(".", 1)[0])
    except Exception:  # noqa: BLE001 - a pipeline under construction: fall back to all parameters
        logger.warning(
            "grid: cannot build pipelines %s; every parameter counts for their cells",
            pipeline_names,
            exc_info=True,
        )
        return None
    return keys


def parameter_fingerprints(grid: Grid, layout: GridLayout) -> dict[str, str]:
    """Per ``model.stage``: hash of the resolved parameters its pipelines read."""
    with _environ(layout.environ):
        parameters = cell_config(layout, "parameters")
    out: dict[str, str] = {}
    for cell in grid.cells:
        key = f"{cell.model}.{cell.stage}"
        if key in out or not cell.pipelines:
            continue
        used = pipeline_parameter_keys(cell.pipelines, layout)
        chosen = parameters if used is None else {k: parameters.get(k) for k in sorted(used)}
        out[key] = fingerprint(chosen)
    return out


def write_manifest(grid: Grid, layout: GridLayout, fingerprints: Mapping[str, str]) -> Path:
    """``grid.json``: everything a SLURM task needs to run a cell by index."""
    payload = {
        "name": grid.name,
        "layout": layout.to_dict(),
        "cells": [c.to_dict() for c in grid.cells],
        "fingerprints": dict(fingerprints),
        "waves": [[c.cell_id for c in wave] for wave in grid.waves()],
    }
    path = Path(layout.root) / MANIFEST_FILE
    atomic_write_text(path, json.dumps(payload, indent=1, default=str))
    return path


def read_manifest(root: Path | str) -> tuple[Grid, GridLayout, dict[str, str], list[list[str]]]:
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise ValueError(
            f"no grid manifest at {path}: run `python -m icb_kedro.grid slurm` (or run) first"
        )
    payload = json.loads(path.read_text())
    grid = Grid(payload["name"], tuple(Cell.from_dict(c) for c in payload["cells"]))
    return grid, GridLayout.from_dict(payload["layout"]), payload["fingerprints"], payload["waves"]


def read_done(layout: GridLayout, cell_id: str) -> dict[str, Any] | None:
    path = layout.done_path(cell_id)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a torn marker (killed mid-write) counts as not done


def is_done(layout: GridLayout, cell_id: str, fingerprint_: str) -> bool:
    done = read_done(layout, cell_id)
    return bool(done) and done.get("fingerprint") == fingerprint_
