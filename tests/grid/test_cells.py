"""The grid definition: cells, stable ids, dependencies, waves, templates, config errors."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from icb_kedro.grid.cells import (
    PREPARE_ID,
    build_grid,
    fill_template,
    make_cell_id,
    nest_dotted,
    resolve_trials,
    select_cells,
)
from icb_kedro.grid.cli import parse_overrides

PROJECT_ROOT = Path(__file__).resolve().parents[2]

IC2BERT_LIKE = {
    "name": "g",
    "n_bins": [4, 8],
    "prepare": {"pipelines": ["ingestion", "harmonization", "folds"]},
    "models": {
        "ic2bert": {
            "stages": {
                "pretrain": {
                    "axes": ["n_bins", "held_out"],  # any order: ids use the canonical one
                    "pipelines": ["tokenization", "ic2bert_pretrain"],
                    "namespaces": ["{namespace}"],
                    "runtime_params": {"tokenization.n_bins": "{n_bins}"},
                },
                "finetune": {
                    "axes": ["held_out", "n_bins", "trial"],
                    "after": "pretrain",
                    "pipelines": ["ic2bert_finetune"],
                    "namespaces": ["{namespace}"],
                    "runtime_params": {
                        "tokenization.n_bins": "{n_bins}",
                        "ic2bert": {"tag": "h={held_out}/t={trial}"},
                        "folds.cells.trials": ["{trial}"],
                    },
                    "results": {"fold_metrics": "{namespace}.fold_metrics_ic2bert"},
                },
            }
        }
    },
}
COHORTS = ["Melanoma_PD1_Hugo2016", "Kidney_ICB_Miao2018"]


def test_grid_expands_axes_into_cells_with_stable_ids_and_dependencies():
    grid = build_grid(IC2BERT_LIKE, COHORTS, [0, 1])
    assert len(grid) == 1 + 2 * 2 + 2 * 2 * 2
    assert grid.cells[0].cell_id == PREPARE_ID
    cell = grid["ic2bert.finetune.Melanoma_PD1_Hugo2016.nb8.t1"]
    assert (cell.held_out, cell.n_bins, cell.trial) == ("Melanoma_PD1_Hugo2016", 8, 1)
    assert cell.depends_on == (PREPARE_ID, "ic2bert.pretrain.Melanoma_PD1_Hugo2016.nb8")
    # Templates: an exact placeholder keeps its type, dotted keys nest, strings format.
    assert cell.runtime_params == {
        "tokenization": {"n_bins": 8},
        "ic2bert": {"tag": "h=Melanoma_PD1_Hugo2016/t=1"},
        "folds": {"cells": {"trials": [1]}},
    }
    assert cell.selection == {"namespaces": ["fold_Melanoma_PD1_Hugo2016"]}
    assert cell.results == {"fold_metrics": "fold_Melanoma_PD1_Hugo2016.fold_metrics_ic2bert"}
    # One pretraining per (held-out cohort, n_bins) serves all its trials.
    pretrain = "ic2bert.pretrain.Kidney_ICB_Miao2018.nb4"
    assert sorted(grid.dependents(pretrain)) == [
        "ic2bert.finetune.Kidney_ICB_Miao2018.nb4.t0",
        "ic2bert.finetune.Kidney_ICB_Miao2018.nb4.t1",
    ]
    assert [len(w) for w in grid.waves()] == [1, 4, 8]
    # Same config -> same cells, same hashes (resume relies on it); other config -> other hash.
    again = build_grid(copy.deepcopy(IC2BERT_LIKE), COHORTS, [0, 1])
    assert [c.spec_hash() for c in again.cells] == [c.spec_hash() for c in grid.cells]
    changed = copy.deepcopy(IC2BERT_LIKE)
    changed["models"]["ic2bert"]["stages"]["finetune"]["runtime_params"]["ic2bert"]["tag"] = "x"
    other = build_grid(changed, COHORTS, [0, 1])
    assert other[cell.cell_id].spec_hash() != cell.spec_hash()
    assert other[pretrain].spec_hash() == grid[pretrain].spec_hash()


def test_the_papers_grid_is_910_finetune_cells_over_91_pretrainings():
    config = copy.deepcopy(IC2BERT_LIKE)
    config["n_bins"] = [2, 4, 8, 16, 32, 64, 128]
    grid = build_grid(config, [f"cohort_{i:02d}" for i in range(13)], list(range(10)))
    stages = [c.stage for c in grid.cells]
    assert (stages.count("finetune"), stages.count("pretrain"), stages.count(PREPARE_ID)) == (
        910,
        91,
        1,
    )
    assert len(set(grid.ids)) == len(grid)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda c: c["models"]["ic2bert"]["stages"]["finetune"].update(
                axes=["held_out", "fold"]
            ),
            r"stages.finetune.axes.1': Input should be 'held_out', 'n_bins' or 'trial'",
        ),
        (
            lambda c: c["models"]["ic2bert"]["stages"]["finetune"].update(after="nope"),
            "not an earlier stage",
        ),
        (
            lambda c: c["models"]["ic2bert"]["stages"]["finetune"].update(
                axes=["held_out", "trial"]
            ),
            "spans axes",
        ),
        (
            lambda c: c["models"]["ic2bert"]["stages"]["finetune"].update(pipline=["x"]),
            r"unknown key 'models.ic2bert.stages.finetune.pipline' \(known here: after, axes",
        ),
        (lambda c: c["models"]["ic2bert"]["stages"]["pretrain"].update(pipelines=[]), "pipelines"),
        (
            lambda c: c["models"]["ic2bert"]["stages"]["pretrain"].update(
                runtime_params={"x": "{trial}"}
            ),
            "uses 'trial'",
        ),
        (
            lambda c: c["models"]["ic2bert"]["stages"]["finetune"].update(
                slice_inputs={"lodocv_folds": {"trial": "{trial}"}}
            ),
            r"slice_inputs is gone; .*folds.cells.trials",
        ),
        (lambda c: c.update(engine={"threads_per_worker": 2}), "'engine.threads_per_worker'"),
        (lambda c: c.update(slurm={"gpu": 1}), r"unknown key 'slurm.gpu' \(known here: account"),
        (lambda c: c.update(n_bins=[]), "no n_bins values"),
        (lambda c: c["models"]["ic2bert"].update(enabled=False), "no enabled model"),
    ],
)
def test_bad_grid_configs_raise_errors_naming_the_key(mutate, message):
    config = copy.deepcopy(IC2BERT_LIKE)
    mutate(config)
    with pytest.raises(ValueError, match=message):
        build_grid(config, COHORTS, [0])


def test_no_cohorts_is_an_error():
    with pytest.raises(ValueError, match="no held-out cohorts"):
        build_grid(IC2BERT_LIKE, [], [0])


def test_select_cells_keeps_what_the_selection_depends_on():
    grid = build_grid(IC2BERT_LIKE, COHORTS, [0, 1])
    sub = select_cells(grid, ["*Hugo*.nb4.t1"])
    assert sub.ids == [
        PREPARE_ID,
        "ic2bert.pretrain.Melanoma_PD1_Hugo2016.nb4",
        "ic2bert.finetune.Melanoma_PD1_Hugo2016.nb4.t1",
    ]
    with pytest.raises(ValueError, match="no cell"):
        select_cells(grid, ["nothing*"])


def test_trials_ids_and_templates():
    assert resolve_trials(None, 10) == list(range(10))
    assert resolve_trials(2, 10) == [0, 1]
    assert resolve_trials([3, 1], None) == [3, 1]
    for bad in ([1, 1], 0, [-1], True):
        with pytest.raises(ValueError):
            resolve_trials(bad, 10)
    with pytest.raises(ValueError, match="kfold"):
        resolve_trials(None, None)
    assert make_cell_id("m", "s", "A b/c", 4, 0) == "m.s.A_b_c.nb4.t0"
    assert fill_template(["{x}", "{x}-y", {"k{x}": 1}], {"x": 3}) == [3, "3-y", {"k3": 1}]
    assert nest_dotted({"a.b": 1, "a": {"c": 2}, "d": 3}) == {"a": {"b": 1, "c": 2}, "d": 3}
    assert parse_overrides(("engine.n_workers=4", "n_bins=[4, 8]", "cohorts=null")) == {
        "engine": {"n_workers": 4},
        "n_bins": [4, 8],
        "cohorts": None,
    }


def test_light_grid_config_only_shrinks_trials_and_bins():
    """Kedro replaces the whole `grid` block per environment: the light copy must not drift."""
    from icb_kedro.grid.config import config_loader

    base = config_loader(PROJECT_ROOT / "conf", "base")["parameters"]["grid"]
    light = config_loader(PROJECT_ROOT / "conf", "light")["parameters"]["grid"]
    shrunk = {"name", "trials", "n_bins"}
    assert {k: v for k, v in base.items() if k not in shrunk} == {
        k: v for k, v in light.items() if k not in shrunk
    }
    assert light["trials"] == 1 and len(light["n_bins"]) == 1
    assert light["name"] != base["name"]  # same workdir: different folders, or they would clobber


def test_configured_grid_builds_for_the_real_cohorts():
    from icb_kedro.grid.config import load_settings

    settings = load_settings(
        PROJECT_ROOT, env="base", overrides={"cohorts": None, "workdir": "/nonexistent"}
    )
    grid = build_grid(settings.grid, settings.cohorts, settings.trials)
    assert len(settings.cohorts) >= 2 and settings.trials == list(range(50))  # 5-fold x 10 repeats
    finetune = [c for c in grid.cells if c.stage == "finetune"]
    assert len(finetune) == len(settings.cohorts) * 50 * len(settings.grid["n_bins"])
    with pytest.raises(ValueError, match="no files"):
        load_settings(PROJECT_ROOT, env="base", overrides={"cohorts": ["Not_A_Cohort"]})
    with pytest.raises(ValueError, match="are not trials of folds.lodocv"):
        load_settings(
            PROJECT_ROOT, env="light", overrides={"trials": [3]}
        )  # light: 3-fold x 1 repeat
    assert load_settings(PROJECT_ROOT, env="light", overrides={"trials": [2, 1001]}).trials == [
        2,
        1001,
    ]  # an 80/20 split


@pytest.mark.parametrize("env", ["base", "light", "paper"])
def test_every_environments_grid_block_parses_and_fills_defaults(env):
    from icb_kedro.grid.config import config_loader
    from icb_kedro.grid.parameters import GridConfig

    block = config_loader(PROJECT_ROOT / "conf", env)["parameters"]["grid"]
    settings = GridConfig.of(block, f"params:grid ({env})").settings()
    assert settings["engine"]["retries"] == block["engine"]["retries"]
    finetune = settings["models"]["ic2bert"]["stages"]["finetune"]
    assert finetune["runtime_params"]["folds.cells.trials"] == ["{trial}"]
    assert finetune["tags"] is None and finetune["only_missing_outputs"] is False  # defaults
    # A --set override of a wrong type fails with its path before any cell is planned.
    from icb_kedro.grid.config import load_settings

    with pytest.raises(ValueError, match=r"params:grid \(with --set\): 'engine.n_workers'"):
        load_settings(PROJECT_ROOT, env=env, overrides={"engine": {"n_workers": 0}})
