"""Typed ``params:baselines``: every environment parses, typos and bad values are refused,
absent keys take the defaults the code had."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pandas as pd
import pytest

from icb_kedro.models.baselines import parameters as typed
from icb_kedro.models.baselines.estimators import model_spec_from_params
from icb_kedro.models.baselines.fold_tables import fit_settings
from icb_kedro.pipelines.baselines import nodes
from icb_kedro.pipelines.baselines.config import BaselinesConfig, ModelConfig

BLOCK = "params:baselines"


@pytest.fixture(scope="module")
def merged(parameters_by_env) -> dict[str, dict]:
    """``params:baselines`` of each environment, soft-merged as a run loads it."""
    return {env: params["baselines"] for env, params in parameters_by_env.items()}


@pytest.mark.parametrize("env", ["base", "light", "paper"])
def test_every_environment_parses_and_builds_the_same_model_specs(merged, env) -> None:
    raw = merged[env]
    config = BaselinesConfig.of(raw, BLOCK)
    assert set(config.models) == set(raw["models"])
    for name, entry in raw["models"].items():
        # The node's typed entry and interpretation's plain dict give one and the same spec.
        assert model_spec_from_params(name, config.models[name]) == model_spec_from_params(
            name, entry
        )
    assert dataclasses.asdict(fit_settings(config)) == {
        "inner_cv_splits": raw["inner_cv"]["n_splits"],
        "n_jobs": raw["n_jobs"],
        "threshold_method": raw["threshold"]["method"],
        "threshold_source": raw["threshold"]["source"],
        "seed_offset": raw["seed_offset"],
        "n_features": raw["n_features"],
        "calibration": raw["calibration"],
    }


def test_light_and_paper_override_base_by_soft_merge(merged) -> None:
    base, light, paper = (BaselinesConfig.of(merged[e], BLOCK) for e in ("base", "light", "paper"))
    assert base.n_repeats == 1 and paper.n_repeats is None
    assert light.held_out == ("Melanoma_PD1_Hugo2016", "Melanoma_Nivolumab_Riaz2017")
    assert [c.models["adaboost"].enabled for c in (base, light, paper)] == [False, True, True]
    assert light.models["adaboost"].grid is None and light.models["adaboost"].search == "none"
    # paper's {stop: 300} / {start: 2, stop: 10} merge into conf/base's ranges
    grid = paper.models["adaboost"].grid
    assert (grid["n_estimators"].start, grid["n_estimators"].stop) == (10, 300)
    assert model_spec_from_params("adaboost", paper.models["adaboost"]).grid[
        "estimator__max_depth"
    ] == list(range(2, 10))
    assert paper.models["svm"].grid["kernel"] == ["linear", "poly", "rbf"]
    assert base.models["cnn"].protocols == ("amu_holdout",)


def test_the_block_is_found_by_the_run_start_check() -> None:
    from icb_kedro.hooks import check_parameters, typed_parameters

    assert typed_parameters()["baselines"] is BaselinesConfig
    with pytest.raises(ValueError, match=r"params:baselines: unknown key 'n_trials'"):
        check_parameters({"baselines": {"n_trials": 2}}, ["params:baselines.panel"])


def test_a_typo_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError) as error:
        BaselinesConfig.of({"models": {"rf": {"n_iters": 3}}}, BLOCK)
    message = str(error.value)
    assert message.startswith("params:baselines: unknown key 'models.rf.n_iters'")
    assert "known here: enabled, family, grid, n_iter, params, protocols, search" in message
    with pytest.raises(ValueError, match=r"unknown key 'inner_cv.n_split' \(known here: n_splits"):
        BaselinesConfig.of({"inner_cv": {"n_split": 3}}, BLOCK)
    with pytest.raises(ValueError, match=r"'models.xgbost.\[key\]': Input should be 'logreg'"):
        BaselinesConfig.of({"models": {"xgbost": {}}}, BLOCK)
    with pytest.raises(ValueError, match=r"params:baselines.models.svm: unknown key 'grd'"):
        model_spec_from_params("svm", {"grd": {"C": [1]}})  # interpretation's plain dict


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({"transfer_search": "all"}, "'transfer_search': Input should be 'fold' or 'source'"),
        ({"calibration": "isotonic"}, "'calibration'"),
        ({"threshold": {"method": "median"}}, "'threshold.method'"),
        ({"threshold": {"source": "test"}}, "'threshold.source'"),
        ({"protocols": ["loco", "lodo"]}, "'protocols.1'"),
        ({"n_repeats": 0}, "'n_repeats"),
        ({"n_repeats": {"transfr": 2}}, "'n_repeats"),
        ({"n_features": 0}, "'n_features'"),
        ({"n_jobs": 0}, "'n_jobs'"),
        ({"inner_cv": {"n_splits": 1}}, "'inner_cv.n_splits'"),
        ({"registry": {"model": "cnn"}}, "'registry.model'"),
        ({"amu_holdout": {"pseudo_count": 0}}, "'amu_holdout.pseudo_count'"),
        ({"amu_holdout": {"n_trials": 0}}, "'amu_holdout.n_trials'"),
        ({"signatures": {"min_coverage": 1.0}}, "'signatures.min_coverage'"),
        ({"evaluation": {"n_boot": "many"}}, "'evaluation.n_boot'"),
        ({"models": {"rf": {"search": "bayes", "grid": {"a": [1]}}}}, "'models.rf.search'"),
        ({"models": {"rf": {"n_iter": 0}}}, "'models.rf.n_iter'"),
        ({"models": {"rf": {"family": "knn"}}}, "'models.rf.family'"),
        ({"models": {"rf": {"search": "random"}}}, "needs a non-empty grid"),
        ({"models": {"rf": {"grid": {"d": {"start": 2, "stop": 5}}}}}, "step"),
        ({"models": {"rf": {"grid": {"d": {"start": 5, "stop": 2, "step": 1}}}}}, "no candidates"),
        ({"models": {"rf": {"grid": {"d": 3}}}}, "'models.rf.grid.d"),
    ],
)
def test_bad_choices_types_and_ranges_are_refused(block, where) -> None:
    with pytest.raises(ValueError, match="^params:baselines: ") as error:
        BaselinesConfig.of(block, BLOCK)
    assert where in str(error.value)


def test_defaults_are_what_the_code_did_when_a_key_was_absent() -> None:
    config = BaselinesConfig.of(None, BLOCK)
    assert (config.n_jobs, config.seed_offset, config.n_features) == (1, 0, None)
    assert (config.transfer_search, config.calibration) == ("fold", "none")
    assert config.n_repeats is None and config.held_out is None and config.models == {}
    assert config.amu_holdout.n_trials is None and config.amu_holdout.smote is False
    assert config.amu_holdout.n_features is None
    assert config.registry == typed.Registry(model="best", selection_protocol="loco", seed=0)
    assert BaselinesConfig.of({"registry": None}, BLOCK).registry == config.registry
    assert config.signatures.include_below_coverage is None
    assert config.evaluation.reference_model is None
    # A model entry: enabled, its own family, grid search when it has a grid, else none.
    assert ModelConfig.of({}, BLOCK).enabled is True
    spec = model_spec_from_params("rf", {"grid": {"max_depth": [2, 3]}})
    assert (spec.family, spec.search, spec.n_iter, spec.params) == ("rf", "grid", 10, {})
    assert model_spec_from_params("mlp", {"grid": None}).search == "none"
    # An instance passes through the node boundary unparsed.
    assert BaselinesConfig.of(config, BLOCK) is config


def test_the_nodes_parse_their_block_before_computing() -> None:
    empty = pd.DataFrame()
    with pytest.raises(ValueError, match=r"params:baselines.evaluation: unknown key 'n_boots'"):
        nodes.summarize_cohorts(empty, {"n_boots": 10})
    with pytest.raises(ValueError, match=r"params:baselines.signatures: unknown key 'panl'"):
        nodes.check_signature_coverage(empty, empty, {"panl": "common"})
    with pytest.raises(ValueError, match=r"params:baselines: unknown key 'held_outs'"):
        nodes.predict_signatures(empty, empty, {"held_outs": ["A"]})


def test_the_choices_are_the_codes_own() -> None:
    from icb_kedro.evaluation.metrics import THRESHOLD_METHODS
    from icb_kedro.evaluation.protocols import AMU_PROTOCOL, LODOCV_PROTOCOLS
    from icb_kedro.models.baselines.deployment import DEPLOYABLE_FAMILIES
    from icb_kedro.models.baselines.estimators import MODEL_FAMILIES, SEARCH_KINDS
    from icb_kedro.models.baselines.fold_fit import CALIBRATIONS, THRESHOLD_SOURCES
    from icb_kedro.models.baselines.protocol_runs import TRANSFER_SEARCH_SCOPES

    fields = BaselinesConfig.model_fields
    assert get_args(typed.Family) == MODEL_FAMILIES
    assert get_args(typed.RegistryModel) == ("best", *DEPLOYABLE_FAMILIES)
    assert get_args(typed.LodocvProtocol) == LODOCV_PROTOCOLS
    assert get_args(typed.Protocol) == (*LODOCV_PROTOCOLS, AMU_PROTOCOL)
    assert get_args(ModelConfig.model_fields["search"].annotation)[0] == typed.Literal[SEARCH_KINDS]
    assert get_args(typed.Threshold.model_fields["method"].annotation) == THRESHOLD_METHODS
    assert get_args(typed.Threshold.model_fields["source"].annotation) == THRESHOLD_SOURCES
    assert set(get_args(fields["calibration"].annotation)) == set(CALIBRATIONS)
    assert get_args(fields["transfer_search"].annotation) == TRANSFER_SEARCH_SCOPES
