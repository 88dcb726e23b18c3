"""predict pipeline nodes: reading a new cohort's file, choosing the model, scoring it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.pipelines.predict.nodes import model_uri_for, read_expression_file, score_expression
from icb_kedro.pipelines.predict.pipeline import create_pipeline

GENES = ["GA", "GB", "GC"]


def test_reads_gene_major_files_and_converts_the_scale(tmp_path) -> None:
    tpm = np.array([[0.0, 1.0], [3.0, 7.0], [15.0, 0.5]])  # genes x samples
    frame = pd.DataFrame(np.log2(tpm + 0.001), columns=["s1", "s2"])
    frame.insert(0, "gene", GENES)
    path = tmp_path / "new.expression.tsv.gz"
    frame.to_csv(path, sep="\t", index=False)
    table = read_expression_file({"input_path": str(path)})
    assert list(table.index) == ["s1", "s2"] and list(table.columns) == GENES
    np.testing.assert_allclose(table.to_numpy(), np.log2(tpm.T + 1.0), atol=1e-9)  # log2(TPM+1)


def test_reads_sample_major_files(tmp_path) -> None:
    path = tmp_path / "new.csv"
    pd.DataFrame({"id": ["a", "b"], "GA": [1.0, 2.0], "GB": [0.5, 0.0]}).to_csv(
        path, index=False
    )  # 0.0: a TPM of 0
    table = read_expression_file(
        {"input_path": str(path), "input_layout": "sample_major", "input_scale": "log2_tpm1"}
    )
    assert list(table.index) == ["a", "b"] and table.loc["b", "GA"] == 2.0
    with pytest.raises(ValueError, match="does not exist"):
        read_expression_file({"input_path": str(tmp_path / "nope.tsv")})
    with pytest.raises(ValueError, match="first column must be 'gene'"):
        read_expression_file({"input_path": str(path)})


def test_model_uri_choice() -> None:
    registry = pd.DataFrame({"held_out": ["X"], "model_name": ["icb_ic2bert_fold_X"]})
    assert (
        model_uri_for({"held_out": "X", "model_version": 3}, registry)
        == "models:/icb_ic2bert_fold_X/3"
    )
    assert (
        model_uri_for({"held_out": "X", "model_version": None}, registry)
        == "models:/icb_ic2bert_fold_X/latest"
    )
    assert (
        model_uri_for({"held_out": "X", "model_alias": "champion"}, registry)
        == "models:/icb_ic2bert_fold_X@champion"
    )
    assert (
        model_uri_for({"model_uri": "runs:/abc/model", "held_out": "Y"}, registry)
        == "runs:/abc/model"
    )
    with pytest.raises(ValueError, match="no registered IC2Bert model"):
        model_uri_for({"held_out": "Y"}, registry)
    # predict.model picks AMU's or the baseline's single registered model (held_out unused)
    assert (
        model_uri_for({"model": "amu", "held_out": "Y", "model_alias": "champion"}, registry)
        == "models:/icb_amu@champion"
    )
    assert (
        model_uri_for({"model": "baseline", "model_version": 2}, registry)
        == "models:/icb_baseline/2"
    )
    with pytest.raises(ValueError, match="predict.model must be one of"):
        model_uri_for({"model": "svm"}, registry)


def test_scores_a_new_cohort_with_a_saved_amu_pyfunc_and_refuses_missing_genes(tmp_path) -> None:
    import mlflow

    from icb_kedro.models.amu.pyfunc import AmuPyfuncModel, log_model
    from icb_kedro.models.amu.train import TrainConfig, fit_network
    from icb_kedro.pipelines.predict.nodes import _score_with

    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(6)]
    y = np.arange(24) % 2
    X = np.log(rng.uniform(0.05, 0.3, size=(24, 6)))
    fitted = fit_network(
        X,
        y,
        model_config={"n_layers": 1, "ffn_dim": 8},
        train_config=TrainConfig(epochs=2, seed=0),
        features=genes,
    )
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with mlflow.start_run():
        info = log_model(AmuPyfuncModel(fitted, "log2_tpm1"), "amu")
    model = mlflow.pyfunc.load_model(info.model_uri)
    tpm = rng.uniform(1, 50, size=(5, 6))
    expression = pd.DataFrame(np.log2(tpm + 1), index=[f"s{i}" for i in range(5)], columns=genes)
    scores = _score_with(model, "models:/icb_amu@champion", expression.assign(OTHER=1.0))
    assert (
        list(scores["sample_id"]) == list(expression.index) and scores["y_prob"].between(0, 1).all()
    )
    assert (scores["n_missing_genes"] == 0).all()
    with pytest.raises(
        Exception, match="G2"
    ):  # AMU refuses a file without one of its genes, naming it
        _score_with(model, "models:/icb_amu@champion", expression.drop(columns=["G2"]))


def test_scores_with_a_saved_pyfunc_and_names_missing_genes(tmp_path) -> None:
    import mlflow

    from icb_kedro.models.ic2bert.checkpoint import ModelBundle
    from icb_kedro.models.ic2bert.config import IC2BertConfig
    from icb_kedro.models.ic2bert.pyfunc import IC2BertPyfunc, signature_for
    from icb_kedro.models.ic2bert.tokenizer import fit_quantile_bins
    from icb_kedro.models.ic2bert.weights import init_params

    config = IC2BertConfig(n_genes=3, d_model=8, gene_dim=4, n_layers=1, n_heads=2, ffn_dim=8)
    rng = np.random.default_rng(0)
    training = pd.DataFrame(rng.normal(size=(20, 3)), columns=GENES)
    bundle = ModelBundle(
        config,
        init_params(config, 0),
        fit_quantile_bins(training, GENES, 4),
        {"held_out": "X", "input_transform": "cohort_zscore"},
    )
    model_path = tmp_path / "model"
    mlflow.pyfunc.save_model(
        model_path,
        python_model=IC2BertPyfunc(bundle.to_dict()),
        signature=signature_for(bundle.genes),
    )
    # A whole (small) cohort on log2(TPM+1): the model z-scores its input rows per gene, as
    # in training.
    expression = pd.DataFrame(
        rng.normal(5.0, 1.0, size=(12, 3)), columns=GENES, index=[f"s{i}" for i in range(12)]
    )
    stored = sorted(
        (p.relative_to(model_path), p.stat().st_mtime_ns) for p in model_path.rglob("*")
    )
    scores = score_expression(
        expression, pd.DataFrame(columns=["held_out", "model_name"]), {"model_uri": str(model_path)}
    )
    assert (
        sorted((p.relative_to(model_path), p.stat().st_mtime_ns) for p in model_path.rglob("*"))
        == stored
    )  # a read writes nothing
    assert list(scores.columns) == [
        "sample_id",
        "y_prob",
        "model_uri",
        "n_missing_genes",
        "missing_genes",
    ]
    assert scores["y_prob"].between(0, 1).all() and (scores["n_missing_genes"] == 0).all()
    assert list(scores["sample_id"]) == list(expression.index)
    # A handful of samples gives meaningless per-cohort z-scores: refused, with the reason.
    with pytest.raises(Exception, match="pass a whole cohort"):
        score_expression(expression.iloc[:6], pd.DataFrame(), {"model_uri": str(model_path)})
    # A cohort lacking a panel gene is scored under the training policy ([MISSING]) and the
    # output names the missing genes and their number.
    lacking = score_expression(
        expression.drop(columns=["GC"]), pd.DataFrame(), {"model_uri": str(model_path)}
    )
    assert (lacking["n_missing_genes"] == 1).all() and (lacking["missing_genes"] == "GC").all()
    assert lacking["y_prob"].between(0, 1).all()
    # Nothing of the panel (e.g. Ensembl IDs instead of symbols): refused, naming the genes.
    with pytest.raises(ValueError, match=r"input lacks 3 of the model's 3 genes"):
        score_expression(
            expression.set_axis(["ENSG1", "ENSG2", "ENSG3"], axis=1),
            pd.DataFrame(),
            {"model_uri": str(model_path)},
        )


def test_pipeline_runs_after_registration() -> None:
    pipeline = create_pipeline()
    assert pipeline.inputs() == {"params:predict", "ic2bert_registered_models"}
    assert pipeline.all_outputs() >= {"ic2bert_scores"}
