"""The interpretation pipeline: structure, optional inputs, and a full run on the synthetic study."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import DatasetError
from kedro.runner import SequentialRunner

from icb_kedro.datasets import OptionalDataset
from icb_kedro.pipelines.interpretation import create_pipeline
from icb_kedro.pipelines.interpretation.pipeline import MIRROR_PREFIX
from icb_kedro.reporting.report import assert_report_images

COHORTS = ["CohortA", "CohortB", "CohortC"]


def test_optional_dataset_loads_none_when_missing(tmp_path):
    missing = OptionalDataset(
        {"type": "pandas.ParquetDataset", "filepath": str(tmp_path / "absent.parquet")}
    )
    assert missing.load() is None and missing.exists()
    frame = pd.DataFrame({"a": [1, 2]})
    frame.to_parquet(tmp_path / "present.parquet")
    present = OptionalDataset(
        {"type": "pandas.ParquetDataset", "filepath": str(tmp_path / "present.parquet")}
    )
    pd.testing.assert_frame_equal(present.load(), frame)
    with pytest.raises(DatasetError, match="read-only"):
        present.save(frame)
    with pytest.raises(DatasetError, match="type"):
        OptionalDataset({"filepath": "x"})


def test_mirrors_are_renamed_to_upstream_outputs_when_wired():
    standalone = create_pipeline(cohorts=COHORTS)
    mirrors = {name for name in standalone.inputs() if name.startswith(MIRROR_PREFIX)}
    assert {
        f"{MIRROR_PREFIX}predictions_amu",
        f"{MIRROR_PREFIX}amu_weights_fold_CohortA",
        f"{MIRROR_PREFIX}results_comparisons",
    } <= mirrors
    assert {"interpretation_report", "interpretation_report_figures"} <= standalone.outputs()
    wired = create_pipeline(
        upstream_outputs=["predictions_amu", "amu_weights_fold_CohortA", "unrelated"],
        cohorts=COHORTS,
    )
    assert {"predictions_amu", "amu_weights_fold_CohortA"} <= wired.inputs()
    assert f"{MIRROR_PREFIX}predictions_amu" not in wired.inputs()
    assert (
        f"{MIRROR_PREFIX}predictions_baselines" in wired.inputs()
    )  # not produced upstream: stays optional
    assert len(wired.nodes) == len(standalone.nodes)


def _params(prefix: str, value, catalog: dict) -> None:
    """Register ``params:<prefix>`` and every nested key, as Kedro's context does."""
    catalog[f"params:{prefix}"] = MemoryDataset(value)
    if isinstance(value, dict):
        for key, inner in value.items():
            _params(f"{prefix}.{key}", inner, catalog)


def test_full_run_on_synthetic_study(
    tmp_path, synthetic_study, signature_files, baselines_params, interpretation_params
):
    pipe = create_pipeline(cohorts=COHORTS)
    datasets: dict = {name: MemoryDataset(frame) for name, frame in synthetic_study.items()}
    datasets["interpretation_signature_files"] = MemoryDataset(dict(signature_files))
    from icb_kedro.panels import build_panels

    per_cohort = {
        c: set(
            g
            for g in synthetic_study["harmonized_expression"].columns
            if g not in ("cohort", "sample_id", "sample_key", "label")
        )
        for c in synthetic_study["harmonized_expression"]["cohort"].unique()
    }
    datasets["panel_coverage"] = MemoryDataset(build_panels({"common": {}}, {}, per_cohort)[1])
    for name in pipe.inputs():
        if name.startswith(MIRROR_PREFIX):  # no model pipeline has been run
            datasets[name] = OptionalDataset(
                {"type": "pandas.ParquetDataset", "filepath": str(tmp_path / f"{name}.parquet")}
            )
    _params("baselines", baselines_params, datasets)
    _params("interpretation", interpretation_params, datasets)
    _params(
        "amu",
        {
            "study": {"pseudo_count": 1e-6},
            "cohorts": {"expression": "harmonized_expression", "pseudo_count": 1e-6},
        },
        datasets,
    )
    # Intermediate tables checked below are persisted (the runner releases memory datasets).
    from kedro_datasets.pandas import ParquetDataset

    for name in (
        "interpretation_gene_rankings",
        "interpretation_top_gene_overlap",
        "interpretation_cox",
    ):
        datasets[name] = ParquetDataset(filepath=str(tmp_path / f"{name}.parquet"))
    missing = pipe.inputs() - set(datasets)
    assert not missing, missing
    catalog = DataCatalog(datasets=datasets)
    SequentialRunner().run(pipe, catalog)

    html = catalog.load("interpretation_report")
    figures = catalog.load("interpretation_report_figures")
    assert assert_report_images(html) == len(figures) >= 10
    rankings = catalog.load("interpretation_gene_rankings")
    for _, rows in rankings.groupby(["protocol", "model"]):
        assert rows.sort_values("rank")["gene"].iloc[0] == "PLANT"
    assert set(rankings["model"]) == {"svm", "xgboost"}  # AMU and IC2Bert: not run
    assert "<strong>AMU SHAP (study)</strong>: not run" in html
    overlap = catalog.load("interpretation_top_gene_overlap")
    assert set(overlap.loc[(overlap["k"] == 1) & overlap["in_all"], "gene"]) == {"PLANT"}
    cox = catalog.load("interpretation_cox")
    assert cox.loc[(cox["gene"] == "PLANT") & (cox["endpoint"] == "os"), "hr"].iloc[0] < 1
