"""The interpretation pipeline: structure, optional inputs,
and a full run on the synthetic study."""

from __future__ import annotations

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.io.core import DatasetError
from kedro.runner import SequentialRunner

from icb_kedro.datasets import OptionalDataset
from icb_kedro.pipelines.interpretation import create_pipeline
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


def test_other_pipelines_outputs_are_read_under_their_real_names():
    pipe = create_pipeline(cohorts=COHORTS)
    assert {
        "predictions_amu",
        "amu_weights_fold_CohortA",
        "fold_CohortA.ic2bert_best_model",
        "results_comparisons",
        "baselines_search_log",
    } <= pipe.inputs()
    assert not any(name.startswith("interpretation_input_") for name in pipe.inputs())
    assert {"interpretation_report", "interpretation_report_figures"} <= pipe.outputs()


def test_every_input_read_from_another_pipeline_is_optional_in_the_catalog():
    """Each dataset the interpretation reads from another pipeline is a writable
    OptionalDataset: ``None`` when that pipeline was never run, saved through by its
    producer, and a shared name that orders the two in any combined run."""
    from pathlib import Path

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from icb_kedro.pipeline_registry import register_pipelines

    root = Path(__file__).resolve().parents[3]
    bootstrap_project(root)
    pipelines = register_pipelines()
    data_chain = set().union(
        *(
            pipelines[name].all_outputs()
            for name in ("ingestion", "harmonization", "folds", "tokenization")
        )
    )
    models = set().union(
        *(
            pipelines[name].all_outputs()
            for name in ("amu", "baselines", "ic2bert_finetune", "evaluation")
        )
    )
    read = (pipelines["interpretation"].inputs() | pipelines["evaluation"].inputs()) & (
        models - data_chain
    )
    assert {
        "amu_weights_study",
        "baselines_search_log",
        "all_predictions",
        "predictions_amu",
    } <= read
    with KedroSession.create(project_path=root, env="light") as session:
        catalog = session.load_context().catalog
        for name in sorted(read | {"predictions_a_new_model"}):  # + a plug-in's, by the pattern
            dataset = catalog.get(name)
            assert isinstance(dataset, OptionalDataset) and dataset._writable, name


def test_any_combination_of_pipelines_runs_interpretation_after_what_it_reads():
    """`kedro run --pipelines baselines,interpretation` (summed by Kedro, not the registry)
    orders every interpretation node after the producers of what it reads."""
    from pathlib import Path

    from kedro.framework.startup import bootstrap_project
    from kedro.pipeline import Pipeline

    bootstrap_project(Path(__file__).resolve().parents[3])
    from icb_kedro.pipeline_registry import register_pipelines

    pipelines = register_pipelines()
    for names in (
        ["baselines", "interpretation"],
        ["amu", "evaluation", "interpretation"],
        ["interpretation", "evaluation", "baselines"],
    ):
        combined = sum((pipelines[name] for name in names), Pipeline([]))
        order = {n.name: i for i, n in enumerate(combined.nodes)}  # topologically sorted
        producer = {out: n.name for n in combined.nodes for out in n.outputs}
        readers = [
            n
            for n in combined.nodes
            if n.name in {m.name for m in pipelines["interpretation"].nodes}
        ]
        checked = 0
        for node in readers:
            for name in node.inputs:
                if name in producer and producer[name] not in {r.name for r in readers}:
                    assert order[producer[name]] < order[node.name], (names, name, node.name)
                    checked += 1
        assert checked, names


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
        if name not in datasets and not name.startswith("params:"):  # no other pipeline run
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


def test_the_report_node_is_wired_to_every_source_the_report_reads():
    """The pipeline's mapping, ReportSources and the node agree: a source added to the report
    but not wired (or wired but unknown) would silently show "not run" (or be refused)."""
    from dataclasses import fields

    from icb_kedro.reporting.study import ReportSources

    node = next(
        n for n in create_pipeline(cohorts=COHORTS).nodes if n.name == "interpretation_report"
    )
    wired = set(node._inputs) - {"params"}
    models = {f"predictions_{m}" for m in ("baselines", "ic2bert", "amu")}
    assert wired == {f.name for f in fields(ReportSources)} - {"model_predictions"} | models
    # The registry wires every scored model (a plug-in's predictions_<name> too).
    toy = create_pipeline(cohorts=COHORTS, models=["baselines", "toy"])
    (report,) = [n for n in toy.nodes if n.name == "interpretation_report"]
    assert {"predictions_toy", "predictions_baselines"} <= set(report.inputs)
    assert "predictions_amu" not in report.inputs
