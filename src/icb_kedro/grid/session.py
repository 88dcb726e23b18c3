"""The Kedro session of one grid cell (run inside its child process, see ``cell_session``):
the cell's runtime parameters and configuration, the guard against
overwriting what its dependencies produced, and its result tables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.grid.cells import Cell
from icb_kedro.grid.layout import CellError, GridLayout


@lru_cache(maxsize=8)
def _cached_config(conf_source: str, env: str, key: str, data_dir: str | None) -> dict[str, Any]:
    """Resolved ``catalog`` / ``parameters`` of a conf snapshot (immutable: named by its hash).

    ``data_dir`` ($ICB_DATA_DIR) is part of the key because the globals resolve it.
    """
    from icb_kedro.grid.config import config_loader

    return dict(config_loader(Path(conf_source), env)[key])


def cell_config(layout: GridLayout, key: str) -> dict[str, Any]:
    return _cached_config(str(layout.conf_source), layout.env, key, os.environ.get("ICB_DATA_DIR"))


def _run_session(cell: Cell, layout: GridLayout, cell_dir: Path) -> dict[str, Any]:
    """One Kedro session for the cell; returns its result tables by kind."""
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(cell_dir)
    with KedroSession.create(
        project_path=cell_dir,
        env=layout.env,
        conf_source=layout.conf_source,
        # Merged into the env's parameters, then soft-merged over base (settings.py), so a
        # dotted override such as folds.cells.trials keeps the rest of its block.
        runtime_params=dict(cell.runtime_params) or None,
    ) as session:
        pipelines.set_requested(list(cell.pipelines))
        context = session.load_context()
        missing = [p for p in cell.pipelines if p not in pipelines]
        if missing:
            raise CellError(
                f"cell {cell.cell_id!r}: pipelines {missing} are not registered (have "
                f"{sorted(pipelines)})"
            )
        selected = select_nodes(cell, pipelines)
        if not selected.nodes:
            raise CellError(
                f"cell {cell.cell_id!r}: the selection {cell.selection} of {cell.pipelines} "
                "has no nodes"
            )
        _guard_overwrites(cell, selected, context.catalog)
        outputs = session.run(
            pipeline_names=list(cell.pipelines),
            only_missing_outputs=cell.only_missing_outputs,
            **cell.selection,
        )
        results = {
            kind: _load_results(cell, names, outputs, context.catalog)
            for kind, names in cell.results.items()
        }
    if "predictions" in results and "fold_metrics" not in results:
        # Per-fold outputs only (the cross-fold nodes are outside the cell): score them with
        # the one shared evaluation module, as the model's own fold_metrics node would.
        from icb_kedro.evaluation.summary import fold_metrics

        results["fold_metrics"] = fold_metrics(results["predictions"])
    return results


def select_nodes(cell: Cell, pipelines: Mapping[str, Any]) -> Any:
    """The nodes a cell runs: its pipelines under its Kedro selection (``session.run``'s
    ``namespaces`` is ``Pipeline.filter``'s ``node_namespaces``)."""
    from kedro.pipeline import Pipeline

    return sum((pipelines[p] for p in cell.pipelines), Pipeline([])).filter(
        **{("node_namespaces" if k == "namespaces" else k): v for k, v in cell.selection.items()}
    )


def _guard_overwrites(cell: Cell, selected: Any, catalog: Any) -> None:
    """Refuse to run a node that would write over a dependency's output (shared via symlink).

    Before the run only dependency outputs exist in a fresh cell folder,
    so an output that already exists belongs to another cell.
    """
    clashes = []
    for node in selected.nodes:
        persisted = [
            o
            for o in node.outputs
            if o in catalog and not getattr(catalog.get(o), "_EPHEMERAL", False)
        ]
        existing = [o for o in persisted if _exists(catalog, o)]
        if not existing:
            continue
        if cell.only_missing_outputs and len(existing) == len(persisted):
            continue  # Kedro skips it (all persistent outputs exist)
        clashes.append(f"{node.name} -> {existing}")
    if clashes:
        raise CellError(
            f"cell {cell.cell_id!r} would overwrite outputs of its dependencies: {clashes}. Narrow "
            "the stage's node selection (namespaces / tags / from_inputs / node_names) so it only "
            "runs its own nodes."
        )


def _exists(catalog: Any, name: str) -> bool:
    """``catalog.exists`` that treats datasets unable to answer before a run (MLflow metrics) as
    absent."""
    try:
        return bool(catalog.exists(name))
    except Exception:  # noqa: BLE001 - e.g. kedro-mlflow metrics: "Cannot find run id" outside a run
        return False


def _load_results(
    cell: Cell, names: str | list[str], outputs: Mapping[str, Any], catalog: Any
) -> Any:
    """One dataset, or the concatenation of several (e.g. per-protocol prediction tables)."""
    if isinstance(names, str):
        return _load_result(cell, names, outputs, catalog)
    tables = [_load_result(cell, name, outputs, catalog) for name in names]
    return pd.concat(tables, ignore_index=True)


def _load_result(cell: Cell, name: str, outputs: Mapping[str, Any], catalog: Any) -> Any:
    if name in outputs:
        value = outputs[name]
        return value.load() if hasattr(value, "load") else value
    if name in catalog and _exists(catalog, name):
        return catalog.load(name)
    raise CellError(
        f"cell {cell.cell_id!r}: result dataset {name!r} was not produced by the run nor "
        "found on disk"
    )


def _stat_targets(paths: Any) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in paths}


def _check_targets_untouched(cell: Cell, before: Mapping[Path, tuple[int, int]]) -> None:
    changed = [
        str(p)
        for p, stat in before.items()
        if not p.is_file() or (p.stat().st_size, p.stat().st_mtime_ns) != stat
    ]
    if changed:
        raise CellError(
            f"cell {cell.cell_id!r} modified files of its dependencies through symlinks: "
            f"{changed[:5]}"
        )
