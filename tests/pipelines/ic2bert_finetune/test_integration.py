"""The light config end to end on the real cohorts: tokenization -> pretraining -> fine-tuning
-> registry -> predict, in an isolated project copy (its own data/ and mlflow.db)."""

from __future__ import annotations

import pandas as pd
import pytest

from icb_kedro.paths import discover_cohorts, namespace_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ic2bert_project(foundation_project):
    """The foundation (already run by the shared fixture) + every IC2Bert node, light env."""
    cohorts = discover_cohorts()
    start = [
        "ic2bert_select_model_input",
        *(f"{namespace_for(c)}.ic2bert_split_pretraining_pool" for c in cohorts),
    ]
    foundation_project.run(["ic2bert_finetune"], from_nodes=start)
    foundation_project.run(["predict"])
    return foundation_project


def test_light_run_scores_every_cohort_with_every_protocol(ic2bert_project) -> None:
    predictions = ic2bert_project.read("data/07_model_output/predictions_ic2bert.parquet")
    cohorts = discover_cohorts()
    assert sorted(predictions["cohort"].unique()) == cohorts
    arms = predictions.groupby(["model", "protocol"])["cohort"].nunique().to_dict()
    # The default readout (per-gene expected bins -> L2-LR) and its ablations on the same
    # folds; Mariathasan2018 (376 of the 937 panel genes, the rest [MISSING]) is held out too.
    expected = [
        (m, p)
        for m in ("ic2bert", "ic2bert_random_init", "ic2bert_token_lr")
        for p in ("transfer", "loco", "transfer_paper")
    ]
    assert arms == {(m, p): len(cohorts) for m, p in [*expected, ("ic2bert_ensemble", "loco")]}
    assert predictions["y_prob"].between(0, 1).all()
    check = pd.read_csv(ic2bert_project.path / "data/08_reporting/ic2bert/learning_check.csv")
    assert set(check["cohort"]) == set(cohorts) and check["train_auroc"].notna().any()
    assert (
        check.groupby(["model", "protocol"])["test_prob_sd"].max() > 0
    ).all()  # no arm is a constant predictor
    metrics = ic2bert_project.read("data/07_model_output/fold_metrics_ic2bert.parquet")
    assert (
        metrics["auroc"].notna().all()
        and (metrics.loc[metrics.protocol == "transfer", "repeat"] == 0).all()
    )
    # Out of fold: every labelled patient of every cohort scored once by each transfer arm.
    transfer = predictions[predictions.protocol == "transfer"]
    assert (
        transfer.groupby("model").size().eq(512).all()
        and not transfer.duplicated(["model", "sample_key"]).any()
    )
    history = ic2bert_project.read("data/07_model_output/ic2bert/pretrain_history.parquet")
    assert sorted(history["held_out"].unique()) == cohorts
    for cohort in cohorts:  # a held-out cohort never enters its own pretraining pool
        split = ic2bert_project.read(
            f"data/05_model_input/ic2bert/{namespace_for(cohort)}/pretrain_split.parquet"
        )
        assert not split["sample_key"].str.startswith(cohort + ":").any()
    assert (
        ic2bert_project.path / "data/06_models/ic2bert" / namespace_for(cohorts[0]) / "pretrain"
    ).is_dir()
    sample_size = pd.read_csv(ic2bert_project.path / "data/08_reporting/ic2bert/sample_size.csv")
    assert sorted(sample_size["n_train"].unique()) == [0, 4]


def test_models_are_registered_and_the_predict_pipeline_scores_a_cohort(ic2bert_project) -> None:
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=ic2bert_project.tracking_uri, registry_uri=ic2bert_project.tracking_uri
    )
    names = {m.name for m in client.search_registered_models()}
    assert {f"icb_ic2bert_{namespace_for(c)}" for c in discover_cohorts()} <= names
    scores = ic2bert_project.read("data/07_model_output/ic2bert_scores.parquet")
    assert (
        len(scores) == 27 and scores["y_prob"].between(0, 1).all()
    )  # Hugo2016, scored by the Miao model
    assert (scores["n_missing_genes"] == 0).all()  # Hugo2016 measures every panel gene
    assert scores["model_uri"].iloc[0] == "models:/icb_ic2bert_fold_Kidney_ICB_Miao2018@champion"
    champion = client.get_model_version_by_alias("icb_ic2bert_fold_Kidney_ICB_Miao2018", "champion")
    assert (
        champion.tags["held_out"] == "Kidney_ICB_Miao2018"
        and champion.tags["protocol"] == "transfer"
    )
    # What it is and how well it did, on the version itself (registry tags and description).
    assert (
        int(champion.tags["n_genes"]) > 900
        and "Melanoma_PD1_Hugo2016" in champion.tags["pretrain_cohorts"]
    )
    assert champion.description.startswith("IC2Bert for Kidney_ICB_Miao2018: encoder pretrained")
    # A transfer model trains on the sources and part of its own cohort (target_train), so
    # scoring that cohort's training patients again is in-sample: the version says how many.
    n_rows, n_own = (int(champion.tags[t]) for t in ("n_finetune_rows", "n_finetune_rows_held_out"))
    assert 0 < n_own < n_rows, (n_rows, n_own)
    assert f"{n_own} of them from Kidney_ICB_Miao2018 itself" in champion.description
    assert "Measured on Kidney_ICB_Miao2018: transfer AUROC" in champion.description
    assert champion.tags["auroc_transfer"].startswith("0.") and "auroc_zero_shot" in champion.tags
    experiment = client.get_experiment_by_name("icb_kedro")
    runs = client.search_runs([experiment.experiment_id], filter_string="tags.model = 'ic2bert'")
    assert {r.data.tags["protocol"] for r in runs} >= {
        "transfer",
        "loco",
    }  # fold child runs (project hook)


def test_pooled_head_finetuning_does_not_keep_a_random_heads_ranking(ic2bert_project) -> None:
    """The paper's readout on real data (Liu2019, transfer trial 0): the head starts at zero
    weights and bias logit(prevalence), is probed, then the model is fine-tuned with a small
    encoder rate. Its test logits must not follow the ranking of a random (He-init) head on
    the same pretrained encoder: the original kept it (median Spearman 0.84 over 14 trials)."""
    import pickle

    import numpy as np
    from scipy.stats import spearmanr

    from icb_kedro.evaluation.protocols import iter_protocol_folds
    from icb_kedro.models.ic2bert import finetune_loop, train_config
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle
    from icb_kedro.models.ic2bert.predict import pooled_features, predict_logits
    from icb_kedro.models.ic2bert.tokenizer import token_matrix

    cohort = "Melanoma_PD1_Liu2019"
    ns = namespace_for(cohort)
    with open(ic2bert_project.path / f"data/06_models/ic2bert/{ns}/pretrained.pkl", "rb") as handle:
        bundle = ModelBundle.from_dict(pickle.load(handle))
    tokens = ic2bert_project.read(f"data/05_model_input/ic2bert/{ns}/tokens.parquet")
    folds = ic2bert_project.read("data/05_model_input/lodocv_folds.parquet")
    spec = next(iter(iter_protocol_folds(folds[folds["held_out"] == cohort], ["transfer"], 1)))
    train_keys = [k for k in spec.train_keys if k.startswith(cohort + ":")]
    labels = tokens.set_index("sample_key").loc[train_keys, "label"].astype(int).to_numpy()
    config = train_config.finetune_config(
        {
            "batch_size": 16,
            "max_epochs": 8,
            "min_epochs": 8,
            "patience": 8,
            "linear_probe_epochs": 10,
            "encoder_lr_scale": 0.1,
            "optimizer": {"peak_lr": 1e-3, "warmup_fraction": 0.1},
        }
    )
    result = finetune_loop.finetune(
        bundle.config,
        bundle.params,
        token_matrix(tokens, train_keys),
        labels,
        config,
        spec.seed,
        "large",
    )
    x_test = token_matrix(tokens, spec.test_keys)
    tuned = predict_logits(bundle.config, result.params, x_test)
    assert np.std(tuned) > 1e-3  # not a constant predictor
    # Random He-uniform heads (the original's init) on the same frozen pooled features.
    pooled = pooled_features(bundle.config, bundle.params, x_test)
    heads = np.random.default_rng(0).uniform(-1, 1, (10, bundle.config.d_model)) * np.sqrt(
        6.0 / bundle.config.d_model
    )
    rhos = [abs(spearmanr(tuned, pooled @ head).statistic) for head in heads]
    assert np.median(rhos) < 0.6, (
        f"fine-tuned logits follow random heads' ranking (median |Spearman| {np.median(rhos):.2f})"
    )


# Run in a virtual environment without icb_kedro or Kedro: load the registered model, score a
# parquet file, report which file the model's class came from.
LOAD_AND_SCORE = """
import importlib.util, sys
assert importlib.util.find_spec("icb_kedro") is None and importlib.util.find_spec("kedro") is None
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
model.predict(pd.read_parquet(sys.argv[2])).to_parquet(sys.argv[3])
print(sys.modules[type(model.unwrap_python_model()).__module__].__file__)
"""


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, str]:
    import json
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_registered_model_scores_and_serves_where_the_project_is_not_installed(
    ic2bert_project, model_free_env, shared_data_dir, tmp_path
) -> None:
    """The registered champion, outside the project: ``mlflow.pyfunc.load_model`` and
    ``mlflow models serve`` in a virtual environment without icb_kedro or Kedro score the real
    cohort exactly as the project's ``predict`` did; bad payloads get HTTP 400 and the reason."""
    import json
    import os
    import signal
    import subprocess
    import time
    import urllib.request

    import numpy as np

    from icb_kedro.pipelines.predict.nodes import read_expression_file

    uri = "models:/icb_ic2bert_fold_Kidney_ICB_Miao2018@champion"
    expected = ic2bert_project.read("data/07_model_output/ic2bert_scores.parquet").set_index(
        "sample_id"
    )["y_prob"]
    expression = read_expression_file(
        {"input_path": str(shared_data_dir / "cohorts/Melanoma_PD1_Hugo2016.expression.tsv.gz")}
    )
    expression.to_parquet(
        tmp_path / "cohort.parquet"
    )  # every gene of the file: extra columns are ignored
    done = model_free_env.run(
        LOAD_AND_SCORE,
        uri,
        str(tmp_path / "cohort.parquet"),
        str(tmp_path / "scores.parquet"),
        tracking_uri=ic2bert_project.tracking_uri,
        cwd=ic2bert_project.path,
    )
    assert (
        "/code/icb_kedro/models/ic2bert/pyfunc.py" in done.stdout
    )  # the model's own copy of its code
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    np.testing.assert_allclose(
        scores["y_prob"].to_numpy(), expected.loc[expression.index].to_numpy(), rtol=0, atol=1e-9
    )

    # The same model behind MLflow's REST server, on loopback.
    port = _free_port()
    log = open(tmp_path / "serve.log", "w")
    server = subprocess.Popen(
        [
            str(model_free_env.python),
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=ic2bert_project.path,
        env=model_free_env.environ(ic2bert_project.tracking_uri),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-4000:]
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping in 240 s"
            time.sleep(1)
        panel = set(_panel_genes(ic2bert_project, uri))
        genes = [c for c in expression.columns if c in panel]
        status, body = _post(
            f"{base}/invocations", {"dataframe_split": expression[genes].to_dict(orient="split")}
        )
        assert status == 200, body[-2000:]
        served = [row["y_prob"] for row in json.loads(body)["predictions"]]
        np.testing.assert_allclose(
            served, expected.loc[expression.index].to_numpy(), rtol=0, atol=1e-9
        )
        # Malformed payloads: a handful of samples (per-cohort z-scores need a cohort) and a
        # table of Ensembl IDs: 400 with the model's own input-validation message.
        status, body = _post(
            f"{base}/invocations",
            {"dataframe_split": expression[genes].head(4).to_dict(orient="split")},
        )
        assert status == 400 and "pass a whole cohort" in body, body[-2000:]
        ensembl = expression[genes].set_axis([f"ENSG{i:011d}" for i in range(len(genes))], axis=1)
        status, body = _post(
            f"{base}/invocations", {"dataframe_split": ensembl.to_dict(orient="split")}
        )
        assert (
            status == 400 and f"input lacks {len(genes)} of the model's {len(genes)} genes" in body
        ), body[-2000:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()


def _panel_genes(project, uri: str) -> list[str]:
    """The model's gene panel, from its signature (what the documented REST layout lists)."""
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=project.tracking_uri, registry_uri=project.tracking_uri
    )
    name, alias = uri.removeprefix("models:/").split("@")
    version = client.get_model_version_by_alias(name, alias)
    mlflow.set_tracking_uri(project.tracking_uri)
    mlflow.set_registry_uri(project.tracking_uri)
    try:
        return mlflow.models.get_model_info(
            f"models:/{name}/{version.version}"
        ).signature.inputs.input_names()
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
