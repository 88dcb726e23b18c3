"""Nothing stale: what a run ingests is exactly what it harmonizes.

A user removes a cohort (or restricts ``ingestion.cohorts``) and re-runs; the per-cohort
parquet partitions of the earlier run must not come back into the harmonized tables.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import KedroProject, make_project_copy

COHORTS = ("Melanoma_PD1_Hugo2016", "Brain_PD1_Zhao2019", "Lung_PD1_Jung2019")


def _data_dir(root: Path, shared: Path, cohorts) -> Path:
    """A user's data directory: the shared references + symlinks to ``cohorts``' files."""
    (root / "cohorts").mkdir(parents=True)
    for entry in ("amu", "signatures", "ic2bert_prior_genes.txt"):
        (root / entry).symlink_to(shared / entry)
    for cohort in cohorts:
        for suffix in (".expression.tsv.gz", ".clinical.tsv"):
            (root / "cohorts" / f"{cohort}{suffix}").symlink_to(
                shared / "cohorts" / f"{cohort}{suffix}"
            )
    return root


@pytest.fixture
def small_project(tmp_path, shared_data_dir, monkeypatch):
    data = _data_dir(tmp_path / "data_dir", shared_data_dir, COHORTS)
    monkeypatch.setenv("ICB_DATA_DIR", str(data))
    project = KedroProject(make_project_copy(tmp_path / "project"))
    # Panels "in all but one cohort" would shrink to the intersection of two here: use "all".
    base = yaml.safe_load(
        (project.path / "conf" / "base" / "parameters_harmonization.yml").read_text()
    )
    for panel in base["harmonization"]["panels"].values():
        panel["present_in"] = "all"
    (project.path / "conf" / "light" / "parameters_harmonization.yml").write_text(
        yaml.safe_dump(base)
    )
    return project, data


def _cohorts(project: KedroProject, relative: str) -> set[str]:
    return set(pd.read_parquet(project.path / relative, columns=["cohort"])["cohort"])


def test_a_removed_cohort_does_not_come_back(small_project):
    project, data = small_project
    project.run(["ingestion", "harmonization"])
    assert _cohorts(project, "data/03_primary/harmonized_expression.parquet") == set(COHORTS)

    removed = COHORTS[-1]
    for file in (data / "cohorts").glob(f"{removed}.*"):
        os.unlink(file)
    project.run(["ingestion", "harmonization"])

    ingested = {
        p.name.removesuffix(".parquet")
        for p in (project.path / "data/02_intermediate/expression").glob("*.parquet")
    }
    assert ingested == set(COHORTS) - {removed}  # the earlier run's partition is gone
    for table in (
        "harmonized_expression",
        "expression_standardized",
        "expression_combat",
        "clinical_table",
    ):
        assert _cohorts(project, f"data/03_primary/{table}.parquet") == ingested, table
