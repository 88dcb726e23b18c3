"""The foundation on the real shared cohorts (light env): counts, panels, folds, MLflow, viz."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from icb_kedro.paths import discover_cohorts
from icb_kedro.schema import PRETRAIN_ROLES, gene_columns

pytestmark = pytest.mark.integration


def test_real_cohorts_are_ingested_and_harmonized(foundation_project):
    table = foundation_project.read("data/03_primary/harmonized_expression.parquet")
    panels = foundation_project.read("data/03_primary/gene_panels.parquet")
    # 13 cohorts, 627 samples (data README): 193 R / 319 NR / 115 unlabelled.
    assert panels.panel.value_counts().to_dict() == {
        "common": 1719,
        "ic2bert_prior": 937,
        "amu160": 159,
    }
    assert table.shape == (627, 4 + panels.gene.nunique())
    assert table["cohort"].nunique() == 13
    counts = table["label"].value_counts(dropna=False)
    assert (counts[1], counts[0], table["label"].isna().sum()) == (193, 319, 115)
    assert table["sample_key"].is_unique
    assert table[gene_columns(table)].min().min() >= 0.0  # log2(TPM+1) of non-negative TPM
    # A gene a cohort does not measure is NaN for the whole cohort, never a made-up number:
    # Mariathasan2018 (a 1,768-gene panel) has 381 of the 983 IC2Bert prior genes, 376 of
    # the 937 kept; every other cohort measures all 937.
    ic2bert = panels.loc[panels.panel == "ic2bert_prior", "gene"].tolist()
    measured = table[ic2bert].notna().groupby(table["cohort"]).all()
    assert measured.sum(axis=1).to_dict()["Bladder_Atezolizumab_Mariathasan2018"] == 376
    assert (measured.drop(index="Bladder_Atezolizumab_Mariathasan2018").sum(axis=1) == 937).all()
    assert (
        table[ic2bert].notna().groupby(table["cohort"]).any().eq(measured).all().all()
    )  # never partial
    coverage = foundation_project.read("data/03_primary/panel_coverage.parquet").set_index(
        ["panel", "cohort"]
    )
    assert coverage.loc[("amu160", "Bladder_Atezolizumab_Mariathasan2018"), "n_present"] == 78

    amu = foundation_project.read("data/02_intermediate/amu_matrix.parquet")
    assert amu.shape == (207, 2 + 160) and int(amu["label"].sum()) == 73

    summary = pd.read_csv(foundation_project.path / "data/08_reporting/cohort_summary.csv")
    assert summary.set_index("cohort").loc[
        "Melanoma_PD1_Hugo2016", ["n_R", "n_NR", "n_unlabelled"]
    ].tolist() == [14, 13, 0]
    # Both label rules are counted; Liu2019 holds both study arms (one dataset).
    liu = summary.set_index("cohort").loc["Melanoma_PD1_Liu2019"]
    assert (liu["n_R"], liu["n_NR"], liu["n_R_recist"], liu["n_NR_recist"]) == (50, 61, 46, 70)
    assert "ipilimumab-naive" in liu["arms"] and liu["ic2bert_prior_genes_used"] == 937
    assert (
        foundation_project.path / "data/08_reporting/harmonization_pca.png"
    ).stat().st_size > 10_000
    assert (
        foundation_project.path / "data/08_reporting/panel_coverage.png"
    ).stat().st_size > 10_000

    z = foundation_project.read("data/03_primary/expression_standardized.parquet")
    assert z.groupby("cohort")[gene_columns(z)[:50]].mean().abs().max().max() < 1e-9


def test_real_folds_keep_test_rows_out_of_training_and_pretraining(foundation_project):
    folds = foundation_project.read("data/05_model_input/lodocv_folds.parquet")
    # light env: one round of 3-fold + 2 of the paper's 80/20 splits (base: 10 x 5-fold + 10)
    assert folds.groupby("scheme").trial.nunique().to_dict() == {"holdout": 2, "kfold": 3}
    assert sorted(folds.held_out.unique()) == discover_cohorts()
    labelled_tests = folds[(folds.scheme == "kfold") & (folds.role == "target_test")]
    labelled = folds[
        (folds.scheme == "kfold")
        & (folds.trial == 0)
        & folds.role.isin(["target_train", "target_test"])
    ]
    assert (
        labelled_tests.sample_key.is_unique and len(labelled_tests) == len(labelled) == 512
    )  # each patient tested once
    for (held_out, _), fold in folds.groupby(["held_out", "trial"]):
        test = set(fold.sample_key[fold.role == "target_test"])
        assert not test & set(
            fold.sample_key[fold.role.isin(["target_train", "source", *PRETRAIN_ROLES])]
        )
        assert (fold.cohort[fold.role.isin(PRETRAIN_ROLES)] != held_out).all()
        assert len(fold) == 627


def test_mlflow_parent_run_holds_the_harmonization_summary(foundation_project):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=foundation_project.tracking_uri)
    experiment = client.get_experiment_by_name("icb_kedro")
    runs = client.search_runs([experiment.experiment_id])
    run = next(r for r in runs if "harmonization.n_samples" in r.data.metrics)
    assert run.data.metrics["harmonization.n_samples"] == 627
    assert run.data.metrics["harmonization.n_common_genes"] == 1719
    assert (
        run.data.params["folds.lodocv.kfold.n_repeats"] == "1"
        and run.data.params["folds.lodocv.paper.n_trials"] == "2"
    )
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "harmonization")}
    assert {"harmonization/cohort_summary.csv", "harmonization/harmonization_pca.png"} <= artifacts


def test_fold_metrics_outputs_become_nested_mlflow_runs(light_project):
    import mlflow

    from icb_kedro.hooks import LodocvFoldRunsHook

    table = pd.DataFrame(
        {
            "model": ["m", "m"],
            "protocol": ["transfer"] * 2,
            "cohort": ["A", "B"],
            "trial": [0, 0],
            "n_train": [10, 10],
            "n_test": [5, 5],
            "n_test_pos": [2, 2],
            "auroc": [0.7, float("nan")],
        }
    )
    mlflow.set_tracking_uri(light_project.tracking_uri)
    mlflow.set_experiment("hook_test")
    with mlflow.start_run() as parent:
        LodocvFoldRunsHook().after_node_run(
            node=None, outputs={"fold_metrics_m": table, "other": table}
        )
    client = mlflow.MlflowClient(tracking_uri=light_project.tracking_uri)
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(c.data.tags["cohort"] for c in children) == ["A", "B"]
    by_cohort = {c.data.tags["cohort"]: c for c in children}
    assert by_cohort["A"].data.metrics["auroc"] == 0.7
    assert "auroc" not in by_cohort["B"].data.metrics  # NaN (single-class test split) is not logged
    assert by_cohort["A"].data.params["n_train"] == "10"


def test_a_users_new_cohort_is_picked_up_without_code_change(
    tmp_path, shared_data_dir, monkeypatch
):
    data = tmp_path / "data"
    (data / "cohorts").mkdir(parents=True)
    for item in ("amu", "ic2bert_prior_genes.txt", "signatures"):
        os.symlink(shared_data_dir / item, data / item)
    for f in (shared_data_dir / "cohorts").iterdir():
        os.symlink(f, data / "cohorts" / f.name)
    # "My cohort": two files of the same format dropped into the folder.
    for suffix in (".expression.tsv.gz", ".clinical.tsv"):
        shutil.copy(
            shared_data_dir / "cohorts" / f"Melanoma_PD1_Hugo2016{suffix}",
            data / "cohorts" / f"My_New_Cohort{suffix}",
        )
    monkeypatch.setenv("ICB_DATA_DIR", str(data))
    assert "My_New_Cohort" in discover_cohorts()

    from kedro.config import OmegaConfigLoader
    from kedro.io import DataCatalog

    from icb_kedro.pipelines.ingestion.nodes import ingest_cohorts
    from icb_kedro.settings import CONFIG_LOADER_ARGS

    root = Path(__file__).resolve().parents[1]
    loader = OmegaConfigLoader(
        str(root / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": "light"}
    )
    catalog = DataCatalog.from_config(
        {k: v for k, v in loader["catalog"].items() if k.startswith("raw_cohort")}
    )
    params = loader["parameters"]["ingestion"]
    expression, clinical, report = ingest_cohorts(
        catalog.load("raw_cohort_expression"), catalog.load("raw_cohort_clinical"), params
    )
    assert len(expression) == 14 and "My_New_Cohort" in expression
    assert report.set_index("cohort").loc["My_New_Cohort", "expression_file"].startswith(str(data))


def test_kedro_viz_build_exports_the_project(light_project):
    kedro = Path(sys.executable).with_name("kedro")
    env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"}
    result = subprocess.run(
        [str(kedro), "viz", "build"],
        cwd=light_project.path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    main = json.loads((light_project.path / "build" / "api" / "main").read_text())
    assert {"ingestion", "harmonization", "folds"} <= {p["id"] for p in main["pipelines"]}
    assert any(ns.startswith("fold_") for ns in main.get("modular_pipelines", {}))
    # Model-family and protocol tags, to filter the ~240-node graph to one model.
    tags = {t["id"] for t in main["tags"]}
    assert {
        "model.ic2bert",
        "model.xgboost",
        "model.signatures",
        "protocol.transfer",
        "protocol.loco",
    } <= tags
