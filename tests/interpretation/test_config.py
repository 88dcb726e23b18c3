"""Typed ``params:interpretation`` sub-blocks: every environment parses, the nodes parse their
sub-block at the boundary (a typo fails naming it), ``shap.nsamples: auto`` works for every
KernelSHAP explainer."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from icb_kedro.interpretation import explain_amu, explain_baselines, explain_ic2bert
from icb_kedro.pipelines.interpretation import nodes
from icb_kedro.pipelines.interpretation.config import (
    Embeddings,
    Enrichment,
    Ic2bertImportance,
    InterpretationConfig,
    Rankings,
    Shap,
    Survival,
)
from icb_kedro.schema import LABEL

SUB_BLOCKS = {
    "shap": Shap,
    "ic2bert": Ic2bertImportance,
    "rankings": Rankings,
    "embeddings": Embeddings,
    "enrichment": Enrichment,
    "survival": Survival,
}


@pytest.fixture(scope="module")
def interpretation_by_env(parameters_by_env) -> dict[str, dict]:
    """``params:interpretation`` of each environment, soft-merged as a run loads it."""
    return {env: params["interpretation"] for env, params in parameters_by_env.items()}


@pytest.mark.parametrize("env", ["base", "light", "paper"])
def test_every_sub_block_of_every_environment_parses(interpretation_by_env, env) -> None:
    block = interpretation_by_env[env]
    whole = InterpretationConfig.of(block, "params:interpretation")
    for name, model in SUB_BLOCKS.items():
        # What a node gets (``params:interpretation.<name>``) is what the whole block holds.
        assert model.of(block[name], f"params:interpretation.{name}") == getattr(whole, name)
    shap = whole.shap
    for setting in ("study", "cohorts"):
        for model in ("svm", "xgboost", "amu", "ic2bert"):
            run = shap.run(setting, model)
            assert run.nsamples == "auto" or run.nsamples >= 1
    assert shap.run("cohorts", "amu").protocol == "loco"
    # Light: the SVM's budget is shap's own ("auto"), the shared one stays an int.
    expected_svm = {"base": 1024, "light": "auto", "paper": 1024}[env]
    assert shap.run("cohorts", "svm").nsamples == expected_svm
    assert isinstance(shap.run("cohorts", "xgboost").nsamples, int)


def test_per_model_overrides_the_keys_it_gives_and_inherits_the_others() -> None:
    shap = Shap.of(
        {
            "n_background": 7,
            "nsamples": 90,
            "l1_reg": "num_features(5)",
            "cohorts": {"models": ["amu"], "protocol": "loco", "max_explain_rows": 8},
            "per_model": {"amu": {"nsamples": "auto", "max_explain_rows": None}},
        },
        "params:interpretation.shap",
    )
    amu = shap.run("cohorts", "amu")
    assert (amu.n_background, amu.nsamples, amu.l1_reg) == (7, "auto", "num_features(5)")
    assert amu.max_explain_rows is None  # given null: every test row
    assert shap.run("cohorts", "svm").max_explain_rows == 8
    assert shap.run("study").models == ()
    with pytest.raises(ValueError, match="unknown SHAP setting 'elsewhere'"):
        shap.run("elsewhere")
    # The dict view kept for callers holding the raw block.
    merged = explain_baselines.setting_params(
        {"cohorts": {"models": ["amu"], "protocol": "loco"}}, "cohorts", "amu"
    )
    assert merged["nsamples"] == 100 and merged["protocol"] == "loco" and "per_model" not in merged


@pytest.mark.parametrize("where", ["", "per_model.svm.", "per_model.amu.", "per_model.ic2bert."])
def test_nsamples_auto_is_accepted_for_every_model(where) -> None:
    keys = where.split(".")[:-1]
    block: dict = {"cohorts": {"models": ["svm", "xgboost", "amu", "ic2bert"], "protocol": "loco"}}
    target = block
    for key in keys:
        target = target.setdefault(key, {})
    target["nsamples"] = "auto"
    shap = Shap.of(block, "params:interpretation.shap")
    model = keys[-1] if keys else "amu"
    assert shap.run("cohorts", model).nsamples == "auto"


def test_bad_shap_values_are_refused_naming_the_path() -> None:
    with pytest.raises(ValueError, match=r"interpretation.shap: 'nsamples.*should be 'auto'"):
        Shap.of({"nsamples": "full"}, "params:interpretation.shap")
    with pytest.raises(ValueError, match=r"'per_model.amu': Value error, nsamples: null"):
        Shap.of({"per_model": {"amu": {"nsamples": None}}}, "params:interpretation.shap")
    with pytest.raises(ValueError, match=r"cohorts.protocol is not set.*\['amu', 'svm'\]"):
        Shap.of({"cohorts": {"models": ["svm", "amu", "ic2bert"]}}, "params:interpretation.shap")
    # IC2Bert alone needs no protocol (its bundles name their fold).
    alone = Shap.of({"cohorts": {"models": ["ic2bert"]}}, "params:interpretation.shap")
    assert alone.run("cohorts", "ic2bert").protocol is None


def _linear(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(np.asarray(x) @ np.array([2.0, -1.0, 0.0]))))


def _rows(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(30, 3)), rng.normal(size=(4, 3))


def _additive(values: np.ndarray, rows: np.ndarray, background: np.ndarray) -> None:
    # Each row's SHAP values sum to f(row) - E_background[f] (k-means of 3 rows = the rows).
    np.testing.assert_allclose(
        values.sum(axis=1), _linear(rows) - _linear(background).mean(), atol=1e-6
    )


def test_nsamples_auto_runs_through_the_amu_explainer(monkeypatch) -> None:
    """The AMU explainer hands "auto" to KernelSHAP (it used to call int() on it)."""
    fake = types.ModuleType("icb_kedro.models.amu.train")
    fake.load_network = lambda fitted, engine: None
    fake.predict_proba = lambda fitted, x, batch_size, network: _linear(x)
    monkeypatch.setitem(sys.modules, "icb_kedro.models.amu.train", fake)
    settings = Shap.of({"n_background": 3, "per_model": {"amu": {"nsamples": "auto"}}}, "s").run(
        "study", "amu"
    )
    train, rows = _rows()
    fitted = types.SimpleNamespace(engine="eager")
    values = explain_amu._amu_kernel_shap(fitted, train[:3], rows, settings, seed=0)
    _additive(values, rows, train[:3])


def test_nsamples_auto_runs_through_the_ic2bert_explainer(monkeypatch) -> None:
    monkeypatch.setattr(explain_ic2bert, "_ic2bert_predictor", lambda bundle: _linear)
    train, rows = _rows(1)
    genes = ["A", "B", "C"]
    keys = [f"k{i}" for i in range(len(train) + len(rows))]
    table = pd.DataFrame(np.vstack([train, rows]), index=keys, columns=genes).assign(
        **{LABEL: [0, 1] * ((len(keys) + 1) // 2)}
    )
    fold = types.SimpleNamespace(train_keys=keys[:3], test_keys=keys[len(train) :], seed=0)
    settings = Shap.of(
        {"n_background": 3, "per_model": {"ic2bert": {"nsamples": "auto"}}}, "s"
    ).run("cohorts", "ic2bert")
    explained, values, x_rows = explain_ic2bert._ic2bert_fold_shap(
        types.SimpleNamespace(genes=genes), table, fold, settings
    )
    assert explained == sorted(keys[len(train) :])
    _additive(values, x_rows, train[:3])


# Each node with its sub-block misspelt: parsed before any data is read.
TYPOS = {
    "explain_baseline": (
        lambda p: nodes.explain_baseline("svm", "cohorts", *[None] * 6, {}, p),
        "shap",
        {"per_model": {"svm": {"nsample": 10}}},
        "per_model.svm.nsample",
    ),
    "explain_amu_study": (
        lambda p: nodes.explain_amu_study(None, None, None, {}, p),
        "shap",
        {"study": {"max_rows": 3}},
        "study.max_rows",
    ),
    "explain_amu_cohorts": (
        lambda p: nodes.explain_amu_cohorts(None, None, None, {}, p, None),
        "shap",
        {"n_backgrounds": 3},
        "n_backgrounds",
    ),
    "explain_ic2bert": (
        lambda p: nodes.explain_ic2bert(None, None, None, p, {}, None),
        "ic2bert",
        {"permutation_gene": 5},
        "permutation_gene",
    ),
    "ic2bert_top_k_frequency": (
        lambda p: nodes.ic2bert_top_k_frequency(pd.DataFrame(), p),
        "ic2bert",
        {"topk": [3]},
        "topk",
    ),
    "shap_stability": (lambda p: nodes.shap_stability(None, p), "rankings", {"k": 3}, "k"),
    "top_gene_overlap": (
        lambda p: nodes.top_gene_overlap(pd.DataFrame(), p),
        "rankings",
        {"topk": [3]},
        "topk",
    ),
    "analyse_amu_embeddings": (
        lambda p: nodes.analyse_amu_embeddings(None, None, None, None, p),
        "embeddings",
        {"n_cluster": 3},
        "n_cluster",
    ),
    "enrich_top_genes": (
        lambda p: nodes.enrich_top_genes(pd.DataFrame(), None, p),
        "enrichment",
        {"top": 3},
        "top",
    ),
    "cox_top_genes": (
        lambda p: nodes.cox_top_genes(pd.DataFrame(), None, None, p),
        "survival",
        {"top_kk": 3},
        "top_kk",
    ),
    "cox_random_gene_null": (
        lambda p: nodes.cox_random_gene_null(pd.DataFrame(), None, None, None, p),
        "survival",
        {"random_gene_null": {"n_gene": 3}},
        "random_gene_null.n_gene",
    ),
    "km_summary": (
        lambda p: nodes.km_summary(None, p, None),
        "survival",
        {"endpoint": ["os"]},
        "endpoint",
    ),
    "build_report": (
        lambda p: nodes.build_report(p),
        "",
        {"survival": {"km_protocol": ["loco"]}},
        "survival.km_protocol",
    ),
}


@pytest.mark.parametrize("node", sorted(TYPOS))
def test_a_node_refuses_a_typo_in_its_sub_block(node) -> None:
    call, block, params, key = TYPOS[node]
    where = "params:interpretation" + (f".{block}" if block else "")
    with pytest.raises(ValueError, match=rf"^{where}: unknown key '{key}' \(known here: "):
        call(params)


def test_a_node_takes_the_typed_block_as_is() -> None:
    """The report passes its parsed ``survival`` on; ``of`` passes an instance through."""
    survival = Survival(top_k=3)
    assert Survival.of(survival, "params:interpretation.survival") is survival
    assert nodes.km_summary(None, survival, None).empty  # no predictions: an empty table
