"""The amu pipeline on the real shared data, light config (1 trial, 1 epoch, 1 encoder layer)."""

from __future__ import annotations

import pytest

from icb_kedro.schema import FOLD_METRIC_COLUMNS, PREDICTION_COLUMNS

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def amu_run(foundation_project):
    foundation_project.run(["amu"])
    return foundation_project


def test_light_run_on_real_data(amu_run) -> None:
    predictions = amu_run.read("data/07_model_output/predictions_amu.parquet")
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert set(predictions["protocol"]) == {
        "amu_holdout",
        "amu_holdout_leaky",
        "transfer",
        "loco",
        "within",
    }
    # AMU + the 12 cohorts that measure all 159 panel genes: Mariathasan2018 (78 of them) is
    # left out by AMU's missing-gene policy, never imputed.
    assert predictions["cohort"].nunique() == 13
    assert "Bladder_Atezolizumab_Mariathasan2018" not in set(predictions["cohort"])
    assert (
        not predictions["sample_key"].str.startswith("Bladder_Atezolizumab_Mariathasan2018:").any()
    )
    study = predictions[predictions["protocol"] == "amu_holdout"]
    assert len(study) == 42 and (study["n_train"] == 165).all()  # 207 patients, stratified 80/20
    leaky = predictions[predictions["protocol"] == "amu_holdout_leaky"]
    assert (
        len(leaky) == 56 and (leaky["n_train"] == 224).all()
    )  # 280 rows after duplicating responders
    metrics = amu_run.read("data/07_model_output/fold_metrics_amu.parquet")
    assert list(metrics.columns) == list(FOLD_METRIC_COLUMNS)
    assert len(metrics) == 2 + 12 * 3  # light: 1 trial per protocol
    embeddings = amu_run.read("data/07_model_output/amu_gene_embeddings.parquet")
    assert embeddings.shape == (159, 21)  # the amu160 panel: 159 of AMU's 160 genes


def test_light_run_registers_a_loadable_model(amu_run) -> None:
    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient(
        tracking_uri=amu_run.tracking_uri, registry_uri=amu_run.tracking_uri
    )
    versions = client.search_model_versions("name = 'icb_amu'")
    assert versions, "the final AMU model was not registered as icb_amu"
    latest = max(versions, key=lambda v: int(v.version))
    assert str(client.get_model_version_by_alias("icb_amu", "champion").version) == str(
        latest.version
    )  # project hook
    mlflow.set_tracking_uri(amu_run.tracking_uri)
    mlflow.set_registry_uri(amu_run.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/icb_amu/{latest.version}")
    table = amu_run.read("data/03_primary/harmonized_expression.parquet")
    expression = table[table["cohort"] == "Melanoma_PD1_Hugo2016"].head(5)
    scores = model.predict(expression)
    assert isinstance(scores, pd.DataFrame) and scores["y_prob"].between(0, 1).all()
    assert scores["sample_key"].tolist() == expression["sample_key"].tolist()
    experiment = client.get_run(latest.run_id).info.experiment_id
    children = client.search_runs(
        [experiment], "tags.model = 'amu' and tags.dataset = 'fold_metrics_amu'"
    )
    assert len(children) == 2 + 12 * 3  # one nested MLflow run per fold (project hook)
    with pytest.raises(Exception, match="AMU needs all 159 panel genes"):
        model.predict(table[table["cohort"] == "Bladder_Atezolizumab_Mariathasan2018"].head(5))


LOAD_AND_SCORE = """
import importlib.util, sys
assert importlib.util.find_spec("icb_kedro") is None and importlib.util.find_spec("kedro") is None
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])
print(sys.modules[type(model.unwrap_python_model()).__module__].__file__)
"""


def test_the_registered_model_scores_where_the_project_is_not_installed(
    amu_run, model_free_env, tmp_path
) -> None:
    """icb_amu@champion in a virtual environment without icb_kedro or Kedro (its code, pinned
    requirements and signature travel with it) scores a real cohort as it does in the project."""
    import mlflow
    import numpy as np
    import pandas as pd

    table = amu_run.read("data/03_primary/harmonized_expression.parquet")
    expression = table[table["cohort"] == "Melanoma_PD1_Hugo2016"]
    expression.to_parquet(tmp_path / "cohort.parquet")
    mlflow.set_tracking_uri(amu_run.tracking_uri)
    mlflow.set_registry_uri(amu_run.tracking_uri)
    expected = mlflow.pyfunc.load_model("models:/icb_amu@champion").predict(expression)
    done = model_free_env.run(
        LOAD_AND_SCORE,
        "models:/icb_amu@champion",
        str(tmp_path / "cohort.parquet"),
        str(tmp_path / "scores.parquet"),
        tracking_uri=amu_run.tracking_uri,
        cwd=amu_run.path,
    )
    assert "/code/icb_kedro/models/amu/pyfunc.py" in done.stdout
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert scores["sample_key"].tolist() == expression["sample_key"].tolist()
    np.testing.assert_allclose(
        scores["y_prob"].to_numpy(), expected["y_prob"].to_numpy(), rtol=0, atol=1e-9
    )
    version = mlflow.MlflowClient().get_model_version_by_alias("icb_amu", "champion")
    assert version.tags["n_genes"] == "159" and "labelled patients" in version.description
