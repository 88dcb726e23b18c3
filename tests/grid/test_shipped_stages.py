"""The shipped grid stages (conf/*/parameters_grid.yml) name nodes and datasets of the
registered pipelines: a renamed node or dataset fails here, in CI, not in a grid cell after
its prepare stage has run for an hour.

For every environment and every stage of every model (enabled or not), the stage's Kedro
selection on its pipelines keeps at least one node, and each dataset it reads results from
is written by a node of that selection.
"""

from __future__ import annotations

import pytest

from icb_kedro.grid.cells import build_grid
from icb_kedro.grid.session import select_nodes

ENVS = ("base", "light", "paper")


@pytest.fixture(scope="module")
def registered_pipelines():
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    from .conftest import PROJECT_ROOT

    bootstrap_project(PROJECT_ROOT)
    return pipelines


@pytest.mark.parametrize("env", ENVS)
def test_every_stage_selects_nodes_that_write_its_results(
    env, make_settings, registered_pipelines
) -> None:
    settings = make_settings(f"shipped_{env}", env=env)
    every_model_on = {k: {**v, "enabled": True} for k, v in settings.grid["models"].items()}
    grid = build_grid(
        {**settings.grid, "models": every_model_on}, settings.cohorts[:1], settings.trials[:1]
    )
    checked = set()
    for cell in grid.cells:
        if (cell.model, cell.stage) in checked:
            continue
        checked.add((cell.model, cell.stage))
        where = f"{env}: grid stage {cell.model}.{cell.stage} (cell {cell.cell_id})"
        selected = select_nodes(cell, registered_pipelines)
        assert selected.nodes, f"{where}: {cell.selection} keeps no node of {cell.pipelines}"
        written = selected.all_outputs()
        for kind, names in cell.results.items():
            for name in [names] if isinstance(names, str) else names:
                assert name in written, f"{where}: results.{kind} {name!r} is not written by it"
    assert {model for model, _ in checked} == {"prepare", *settings.grid["models"]}
