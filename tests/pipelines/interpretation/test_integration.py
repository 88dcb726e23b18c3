"""The interpretation pipeline on the real cohorts (light config): the report is built,
every figure in it is a real image, and the PNGs and MLflow artifacts are written."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

from icb_kedro.reporting.report import assert_report_images

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def interpreted(foundation_project):
    """Run ``interpretation`` after the foundation; model pipelines that did not
    run are 'not run'."""
    foundation_project.run(["interpretation"])
    return foundation_project


def test_report_and_figures_on_real_data(interpreted):
    folder = interpreted.path / "data" / "08_reporting" / "interpretation"
    html = (folder / "report.html").read_text(encoding="utf-8")
    n_images = assert_report_images(html)  # every <img> decodes to a non-empty PNG
    assert n_images >= 8
    files = sorted((folder / "figures").glob("*.png"))
    assert len(files) == n_images
    for path in files:
        assert path.stat().st_size > 1000, path
    # Each embedded image is one of the saved files (same pixels, rendered once).
    embedded = {
        len(base64.b64decode(p)) for p in re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    }
    assert len(embedded) >= n_images - 1
    for section in (
        "Cohorts and harmonization",
        "Which genes drive the predictions (SHAP)",
        "Enrichment of top genes",
        "Survival",
    ):
        assert section in html
    assert "harmonization_pca.png" in {p.name for p in files}


def test_tables_on_real_data(interpreted):
    folder = interpreted.path / "data" / "08_reporting" / "interpretation"
    rankings = pd.read_csv(folder / "gene_rankings.csv")
    assert {
        ("amu_holdout", "svm"),
        ("amu_holdout", "xgboost"),
        ("loco", "svm"),
        ("loco", "xgboost"),
    } <= set(zip(rankings["protocol"], rankings["model"]))
    study = rankings[rankings["setting"] == "study"]
    assert study.groupby("model")["gene"].nunique().eq(160).all()  # the AMU paper's 160 genes
    enrichment = pd.read_csv(folder / "enrichment.csv")
    assert (
        enrichment["q_value"].dropna().between(0, 1).all()
        and (enrichment["background_size"] > 0).all()
    )
    cox = pd.read_csv(folder / "cox_per_gene.csv")
    fitted = cox[cox["hr"].notna()]
    assert (
        len(fitted)
        and (fitted["ci_low"] <= fitted["hr"]).all()
        and (fitted["hr"] <= fitted["ci_high"]).all()
    )
    assert set(fitted["endpoint"]) == {"os", "pfs"}


def test_report_is_logged_to_mlflow(interpreted):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=interpreted.tracking_uri)
    experiment = client.get_experiment_by_name("icb_kedro")
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    artifacts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "report")}
    assert "report/report.html" in artifacts and "report/figures" in artifacts
