"""The engine's bookkeeping with Kedro-free payloads: linking, resume, retries,
failures reported while the others finish, blocked dependents, Dask and sequential alike,
and the isolation guard on a real Kedro cell."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from icb_kedro.grid.dask_runner import grid_status, plan_grid, run_grid
from icb_kedro.grid.layout import CellError
from icb_kedro.grid.manifest import read_done

HUGO, RIAZ = "Melanoma_PD1_Hugo2016", "Melanoma_Nivolumab_Riaz2017"
TWO_STAGES = {
    "ic2bert": {"enabled": False},
    "baselines": {"enabled": False},
    "toy": {
        "stages": {
            "pretrain": {
                "axes": ["held_out"],
                "pipelines": ["folds"],
                "namespaces": ["{namespace}"],
            },
            "finetune": {
                "axes": ["held_out", "trial"],
                "after": "pretrain",
                "pipelines": ["folds"],
                "runtime_params": {
                    "folds.cells": {"held_out": ["{held_out}"], "trials": ["{trial}"]}
                },
            },
        }
    },
}


@pytest.fixture(scope="module")
def fake_project(tmp_path_factory) -> Path:
    """A 'project' whose data/ holds a tiny lodocv_folds table and one more file to link."""
    root = tmp_path_factory.mktemp("fake_project")
    (root / "data" / "05_model_input").mkdir(parents=True)
    (root / "data" / "03_primary").mkdir(parents=True)
    rows = [
        {
            "held_out": h,
            "trial": t,
            "seed": 1001 + t,
            "cohort": h,
            "sample_key": f"{h}:s{i}",
            "role": "target_test",
        }
        for h in (HUGO, RIAZ)
        for t in (0, 1)
        for i in range(3)
    ]
    pd.DataFrame(rows).to_parquet(root / "data" / "05_model_input" / "lodocv_folds.parquet")
    pd.DataFrame({"x": [1, 2]}).to_parquet(root / "data" / "03_primary" / "other.parquet")
    return root


def toy_settings(make_settings, fake_project: Path, name: str, **extra):
    overrides = {
        "trials": [0, 1],
        "prepare": {"link_from": str(fake_project)},
        "models": TWO_STAGES,
        **extra,
    }
    return make_settings(name, overrides)


def test_cells_link_dependencies_and_resume(make_settings, fake_project, payloads):
    settings = toy_settings(make_settings, fake_project, "toy_links")
    report = run_grid(
        settings, engine="sequential", cell_fn=payloads.link_only, progress=False, log_mlflow=False
    )
    assert report.ok and len(report.ran) == 1 + 2 + 4 and not report.skipped

    cell_dir = report.root / "cells" / f"toy.finetune.{HUGO}.t1"
    # Every input is linked, none rewritten: the cell picks its folds by runtime parameter.
    for rel in ("05_model_input/lodocv_folds.parquet", "03_primary/other.parquet"):
        linked = cell_dir / "data" / rel
        assert linked.is_symlink() and linked.resolve() == (fake_project / "data" / rel).resolve()
    assert len(pd.read_parquet(fake_project / "data/05_model_input/lodocv_folds.parquet")) == 12
    assert read_done(plan_grid(settings)[1], f"toy.finetune.{HUGO}.t1")["fingerprint"]

    # A second invocation does no work; changing one stage re-runs only that stage's cells.
    markers = {p: p.stat().st_mtime_ns for p in report.root.glob("cells/*/DONE.json")}
    again = run_grid(
        settings, engine="sequential", cell_fn=payloads.link_only, progress=False, log_mlflow=False
    )
    assert again.ran == [] and len(again.skipped) == 7
    assert {p: p.stat().st_mtime_ns for p in markers} == markers
    changed = toy_settings(
        make_settings,
        fake_project,
        "toy_links",
        models={
            **TWO_STAGES,
            "toy": {
                "stages": {
                    **TWO_STAGES["toy"]["stages"],
                    "finetune": {
                        **TWO_STAGES["toy"]["stages"]["finetune"],
                        "runtime_params": {"folds.x": 1},
                    },
                }
            },
        },
    )
    rerun = run_grid(
        changed, engine="sequential", cell_fn=payloads.link_only, progress=False, log_mlflow=False
    )
    assert sorted(rerun.ran) == sorted(c for c in report.ran if c.startswith("toy.finetune"))


@pytest.mark.parametrize("engine", ["sequential", "dask"])
def test_a_failing_cell_is_retried_reported_and_blocks_only_its_dependents(
    engine, make_settings, fake_project, payloads, tmp_path, request
):
    settings = toy_settings(make_settings, fake_project, f"toy_fail_{engine}")
    bad = f"toy.pretrain.{RIAZ}"
    client = request.getfixturevalue("dask_client") if engine == "dask" else None
    flaky = payloads.make_flaky(str(tmp_path), (bad,))
    report = run_grid(
        settings,
        engine=engine,
        client=client,
        cell_fn=flaky,
        retries=2,
        progress=False,
        log_mlflow=False,
    )

    assert list(report.failed) == [bad] and "injected failure" in report.failed[bad]
    assert len(payloads.attempts(tmp_path, bad)) == 3  # retries=2: three attempts
    assert sorted(report.blocked) == [f"toy.finetune.{RIAZ}.t0", f"toy.finetune.{RIAZ}.t1"]
    assert sorted(report.ran) == sorted(
        ["prepare", f"toy.pretrain.{HUGO}", f"toy.finetune.{HUGO}.t0", f"toy.finetune.{HUGO}.t1"]
    )
    assert "injected failure" in (report.root / "cells" / bad / "ERROR.txt").read_text()
    status = grid_status(*plan_grid(settings)).set_index("cell_id")["state"]
    assert status[bad] == "failed" and status[f"toy.finetune.{RIAZ}.t0"] == "pending"
    assert "FAILED" in report.summary() and "BLOCKED" in report.summary()

    # Once fixed, the next invocation runs exactly the failed and blocked cells.
    healed = run_grid(
        settings,
        engine=engine,
        client=client,
        cell_fn=payloads.link_only,
        progress=False,
        log_mlflow=False,
    )
    assert healed.ok and sorted(healed.ran) == sorted([bad, *report.blocked])
    assert not (report.root / "cells" / bad / "ERROR.txt").exists()


def test_a_cell_whose_worker_dies_is_rerun_elsewhere(
    make_settings, fake_project, payloads, tmp_path, dask_client
):
    settings = toy_settings(make_settings, fake_project, "toy_kill")
    victim = f"toy.finetune.{HUGO}.t0"
    killer = payloads.make_worker_killer(str(tmp_path), victim, real=False)
    report = run_grid(
        settings,
        engine="dask",
        client=dask_client,
        cell_fn=killer,
        retries=0,
        progress=False,
        log_mlflow=False,
    )
    assert report.ok and victim in report.ran
    pids = payloads.attempts(tmp_path, victim)
    assert len(pids) == 2 and pids[0] != pids[1]  # the first worker died; another process re-ran it
    assert json.loads((report.root / "cells" / victim / "DONE.json").read_text())["pid"] == pids[1]


def test_a_cell_may_not_overwrite_what_its_dependencies_produced(
    make_settings, fake_project, tmp_path
):
    """The isolation guard, on a real Kedro session: the folds pipeline re-creating prepare's
    folds."""
    folds_dir = tmp_path / "project" / "data" / "05_model_input" / "folds"
    folds_dir.mkdir(parents=True)
    pd.DataFrame({"x": [1]}).to_parquet(folds_dir / f"lodocv_folds_fold_{HUGO}.parquet")
    models = {
        "ic2bert": {"enabled": False},
        "baselines": {"enabled": False},
        "refold": {
            "stages": {
                "run": {"axes": ["held_out"], "pipelines": ["folds"], "namespaces": ["{namespace}"]}
            }
        },
    }
    settings = make_settings(
        "guard",
        {"cohorts": [HUGO], "prepare": {"link_from": str(tmp_path / "project")}, "models": models},
    )
    plan_grid(settings)  # imports the pipelines (libraries may export variables when imported)
    environ, cwd = dict(os.environ), Path.cwd()
    report = run_grid(settings, engine="sequential", retries=0, progress=False, log_mlflow=False)
    assert dict(os.environ) == environ and Path.cwd() == cwd  # the in-process cell restored both
    assert list(report.failed) == [f"refold.run.{HUGO}"]
    assert "would overwrite outputs of its dependencies" in report.failed[f"refold.run.{HUGO}"]
    assert CellError.__name__ in report.failed[f"refold.run.{HUGO}"]
    assert pd.read_parquet(folds_dir / f"lodocv_folds_fold_{HUGO}.parquet")["x"].tolist() == [1]


def test_only_the_parameters_a_stage_reads_invalidate_its_cells(tmp_path, make_settings):
    """Editing AMU's parameters leaves IC2Bert cells finished; editing fine-tuning's re-runs
    fine-tuning cells but keeps the pretraining they reuse."""
    import shutil

    import yaml

    from icb_kedro.grid.cells import build_grid
    from icb_kedro.grid.layout import GridLayout
    from icb_kedro.grid.manifest import cell_fingerprints, parameter_fingerprints

    settings = make_settings("params", {"cohorts": [HUGO], "trials": [0]})
    grid = build_grid(settings.grid, settings.cohorts, settings.trials)

    def fingerprints(edit: tuple[str, str] | None) -> dict[str, str]:
        conf = (
            tmp_path / f"conf_{edit[1] if edit else 'orig'}"
        )  # snapshots are immutable: one per content
        shutil.copytree(
            Path(settings.project_root) / "conf", conf, ignore=shutil.ignore_patterns("local")
        )
        if edit:
            path = conf / "light" / edit[0]
            content = yaml.safe_load(path.read_text())
            content[edit[1]]["seed"] = 12345
            path.write_text(yaml.safe_dump(content))
        environ = {"ICB_DATA_DIR": str(settings.data_dir), "ICB_COHORTS": HUGO}
        layout = GridLayout(
            root=str(tmp_path / "g"), conf_source=str(conf), env="light", environ=environ
        )
        return cell_fingerprints(grid, layout, parameter_fingerprints(grid, layout))

    original = fingerprints(None)
    amu = fingerprints(("parameters_amu.yml", "amu"))
    finetune = fingerprints(("parameters_ic2bert_finetune.yml", "ic2bert_finetune"))
    ic2bert = [c for c in grid.ids if c.startswith("ic2bert.")]
    assert all(amu[c] == original[c] for c in grid.ids)
    changed = sorted(c for c in ic2bert if finetune[c] != original[c])
    assert changed == sorted(c for c in ic2bert if ".finetune." in c or ".zero_shot." in c)
    assert finetune["prepare"] == original["prepare"]


def test_a_cell_claimed_by_a_live_process_is_refused_and_a_dead_claim_taken_over(
    make_settings, fake_project, payloads
):
    import socket

    settings = toy_settings(make_settings, fake_project, "toy_claims")
    _, layout, _ = plan_grid(settings)
    claims = Path(layout.root) / "cells" / ".claims"
    claims.mkdir(parents=True, exist_ok=True)
    busy, stale = f"toy.pretrain.{HUGO}", f"toy.pretrain.{RIAZ}"
    (claims / f"{busy}.json").write_text(
        json.dumps({"host": "elsewhere", "pid": 1, "slurm_job_id": "42"})
    )
    dead_pid = 2**22 + 12345  # above pid_max on Linux: never a live process
    (claims / f"{stale}.json").write_text(
        json.dumps({"host": socket.gethostname(), "pid": dead_pid})
    )
    report = run_grid(
        settings,
        engine="sequential",
        cell_fn=payloads.link_only,
        retries=0,
        progress=False,
        log_mlflow=False,
    )
    assert (
        list(report.failed) == [busy]
        and "already running" in report.failed[busy]
        and "SLURM job 42" in report.failed[busy]
    )
    assert (
        stale in report.ran and not (claims / f"{stale}.json").exists()
    )  # taken over, then released
    (claims / f"{busy}.json").unlink()
    healed = run_grid(
        settings, engine="sequential", cell_fn=payloads.link_only, progress=False, log_mlflow=False
    )
    assert healed.ok and busy in healed.ran


def test_a_rerun_pretraining_cell_keeps_its_resumable_checkpoints(
    make_settings, fake_project, payloads
):
    settings = toy_settings(make_settings, fake_project, "toy_resume")
    report = run_grid(
        settings, engine="sequential", cell_fn=payloads.link_only, progress=False, log_mlflow=False
    )
    cell = report.root / "cells" / f"toy.pretrain.{HUGO}"
    checkpoint = (
        cell / "data" / "06_models" / "ic2bert" / "fold_x" / "pretrain" / "run1" / "3" / "state"
    )
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("epoch 3")
    (cell / "DONE.json").unlink()  # as if the cell had been killed at epoch 3
    again = run_grid(
        settings, engine="sequential", cell_fn=payloads.link_only, progress=False, log_mlflow=False
    )
    assert f"toy.pretrain.{HUGO}" in again.ran and (cell / "DONE.json").is_file()
    assert checkpoint.read_text() == "epoch 3"  # the folder was rebuilt, the checkpoints kept
    assert not (report.root / "cells" / ".resume").joinpath(f"toy.pretrain.{HUGO}").exists()


def test_a_selected_run_keeps_the_whole_manifest_and_merges_every_finished_cell(
    make_settings, fake_project, payloads
):
    settings = toy_settings(make_settings, fake_project, "toy_select")
    everything = run_grid(
        settings, engine="sequential", cell_fn=payloads.link_only, progress=False, log_mlflow=False
    )
    manifest = json.loads((everything.root / "grid.json").read_text())
    subset = run_grid(
        settings,
        engine="sequential",
        cell_fn=payloads.link_only,
        select=[f"toy.finetune.{HUGO}.*"],
        progress=False,
        log_mlflow=False,
    )
    assert subset.ran == []  # all done already
    assert (
        json.loads((everything.root / "grid.json").read_text()) == manifest
    )  # not shrunk to the selection
    grid, _, _ = plan_grid(settings, [f"toy.finetune.{HUGO}.t0"])
    assert {c.cell_id for c in grid.cells} == {
        "prepare",
        f"toy.pretrain.{HUGO}",
        f"toy.finetune.{HUGO}.t0",
    }
    assert json.loads((everything.root / "grid.json").read_text()) == manifest
