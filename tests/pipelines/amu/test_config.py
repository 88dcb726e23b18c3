"""Typed ``params:amu``: every environment parses, typos and bad values are refused naming
the key, defaults fill in, and the recipe built from the block is the one used before."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import get_args

import pytest

from icb_kedro.evaluation.metrics import THRESHOLD_METHODS
from icb_kedro.evaluation.protocols import LODOCV_PROTOCOLS
from icb_kedro.models.amu.architecture import ENGINES
from icb_kedro.models.amu.architecture import AmuConfig as Architecture
from icb_kedro.models.amu.inputs import EXPRESSION_SCALES
from icb_kedro.models.amu.parameters import (
    AmuConfig,
    CohortProtocol,
    Expression,
    StudyProtocol,
    ThresholdMethod,
    Train,
)
from icb_kedro.models.amu.protocol_runs import STUDY_PROTOCOLS
from icb_kedro.models.amu.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[3]
ENVS = ("base", "light", "paper")


@pytest.fixture(scope="module")
def amu_params_by_env(parameters_by_env) -> dict[str, dict]:
    """``params:amu`` of each environment, soft-merged as a run loads it."""
    return {env: params["amu"] for env, params in parameters_by_env.items()}


def _recipe_before(params: dict, setting: str) -> TrainConfig:
    """How the nodes built a setting's recipe before the block was typed."""
    return TrainConfig.from_dict(
        {**params.get("train", {}), **(params.get(setting, {}).get("train") or {})}
    )


@pytest.mark.parametrize("env", ENVS)
def test_every_environment_parses_to_what_its_yaml_says(amu_params_by_env, env) -> None:
    params = amu_params_by_env[env]
    config = AmuConfig.of(params, "params:amu")
    assert config.network() == params["model"]
    assert config.threshold_method == params["threshold_method"]
    assert config.n_jobs == params["n_jobs"]
    assert list(config.study.protocols) == params["study"]["protocols"]
    assert config.study.n_trials == params["study"]["n_trials"]
    assert list(config.cohorts.protocols) == params["cohorts"]["protocols"]
    assert config.cohorts.n_repeats == params["cohorts"]["n_repeats"]
    assert config.cohorts.panel == params["cohorts"]["panel"]
    assert config.final_model.seed == params["final_model"]["seed"]
    assert config.summary.n_boot == params["summary"]["n_boot"]
    for setting in ("study", "cohorts"):
        assert config.train_config(setting) == _recipe_before(params, setting)


def test_base_recipes_are_the_ones_used_before(amu_params_by_env) -> None:
    config = AmuConfig.of(amu_params_by_env["base"], "params:amu")
    study = TrainConfig(
        epochs=8,
        batch_size=32,
        learning_rate=3e-4,
        l2=1e-4,
        lr_milestones=(0.5, 0.75),
        lr_gamma=0.1,
        standardize=True,
        smote=True,
        smote_k_neighbors=5,
        num_threads=1,
        engine="fused",
    )
    assert config.train_config("study") == study
    assert config.train_config("cohorts") == TrainConfig(**{**asdict(study), "epochs": 4})
    assert (config.study.n_trials, config.cohorts.n_repeats, config.n_jobs) == (1, 1, 2)


def test_a_typo_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError) as error:
        AmuConfig.of({"cohorts": {"train": {"epoch": 3}}}, "params:amu")
    message = str(error.value)
    assert "params:amu" in message and "unknown key 'cohorts.train.epoch'" in message
    assert "epochs" in message  # the known keys are listed
    with pytest.raises(ValueError, match=r"unknown key 'study\.n_trial'"):
        AmuConfig.of({"study": {"n_trial": 2}}, "params:amu")
    with pytest.raises(ValueError, match=r"unknown key 'model\.n_head'"):
        AmuConfig.of({"model": {"n_head": 10}}, "params:amu")
    # A fold's seed is its own (final_model.seed for the final model): amu.train.seed was
    # silently overwritten, so it is refused.
    with pytest.raises(ValueError, match=r"unknown key 'train\.seed'"):
        AmuConfig.of({"train": {"seed": 1}}, "params:amu")


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"train": {"engine": "jit"}}, "'train.engine'"),
        ({"train": {"epochs": "many"}}, "'train.epochs'"),
        ({"train": {"epochs": 0}}, "'train.epochs'"),
        ({"train": {"lr_milestones": [0.8, 0.5]}}, "'train': Value error, TrainConfig.lr_mile"),
        ({"model": {"n_heads": 8}}, "'model': Value error, AmuConfig: d_model=20"),
        ({"model": {"attn_dropout": 1.5}}, "'model.attn_dropout'"),
        ({"threshold_method": "f1"}, "'threshold_method'"),
        ({"n_jobs": 0}, "'n_jobs'"),
        ({"study": {"protocols": ["leaky"]}}, "'study.protocols.0'"),
        ({"study": {"test_size": 1.2}}, "'study.test_size'"),
        ({"cohorts": {"protocols": ["lodo"]}}, "'cohorts.protocols.0'"),
        ({"cohorts": {"expression": "tpm"}}, "'cohorts.expression'"),
        ({"cohorts": {"pseudo_count": 0}}, "'cohorts.pseudo_count'"),
        ({"cohorts": {"n_repeats": 0}}, "'cohorts.n_repeats"),
        ({"cohorts": {"n_repeats": {"lodo": 1}}}, "'cohorts.n_repeats"),
        ({"summary": {"n_boot": 0}}, "'summary.n_boot'"),
    ],
)
def test_bad_types_choices_and_ranges_are_refused(params, where) -> None:
    with pytest.raises(ValueError) as error:
        AmuConfig.of(params, "params:amu")
    assert str(error.value).startswith("params:amu: ") and where in str(error.value)


def test_defaults_fill_in_as_the_nodes_did() -> None:
    config = AmuConfig.of(None, "params:amu")
    architecture = asdict(Architecture())
    del architecture["n_genes"], architecture["n_classes"]  # the panel's size; always 2
    assert config.network() == architecture
    assert config.train_config("study") == config.train_config("cohorts") == TrainConfig()
    assert (config.threshold_method, config.n_jobs) == ("youden", 1)
    study, cohorts = config.study, config.cohorts
    assert (study.protocols, study.n_trials, study.test_size, study.pseudo_count) == (
        ("amu_holdout",),
        None,
        0.2,
        1e-6,
    )
    assert (cohorts.protocols, cohorts.n_repeats, cohorts.panel, cohorts.expression) == (
        (),
        None,
        "amu160",
        "harmonized_expression",
    )
    assert cohorts.pseudo_count == 1e-6
    assert (config.final_model.seed, config.summary.n_boot, config.summary.seed) == (0, 1000, 0)
    # null blocks and "all" trials, as the nodes read them
    nulls = AmuConfig.of(
        {"model": None, "study": {"train": None, "n_trials": "all"}, "cohorts": {"train": None}},
        "params:amu",
    )
    assert nulls == AmuConfig.of({}, "params:amu")
    assert AmuConfig.of(config, "params:amu") is config  # a parsed block passes through


def test_a_settings_train_overrides_only_the_keys_it_names() -> None:
    config = AmuConfig.of(
        {
            "train": {"epochs": 8, "learning_rate": 3e-4, "num_threads": 1},
            "study": {"train": {}},
            "cohorts": {"train": {"epochs": 4, "lr_milestones": [0.25, 0.5]}},
        },
        "params:amu",
    )
    assert config.train_config("study") == TrainConfig(epochs=8, learning_rate=3e-4, num_threads=1)
    assert config.train_config("cohorts") == TrainConfig(
        epochs=4, learning_rate=3e-4, num_threads=1, lr_milestones=(0.25, 0.5)
    )
    assert Train(epochs=4).overrides() == {"epochs": 4}


def test_the_choices_are_the_codes() -> None:
    assert get_args(StudyProtocol) == STUDY_PROTOCOLS
    assert get_args(CohortProtocol) == LODOCV_PROTOCOLS
    assert set(get_args(Expression)) == set(EXPRESSION_SCALES)
    assert get_args(ThresholdMethod) == THRESHOLD_METHODS
    assert get_args(Train.model_fields["engine"].annotation) == ENGINES


def test_the_block_is_checked_at_run_start_without_loading_paddle() -> None:
    from icb_kedro.hooks import typed_parameters

    assert typed_parameters()["amu"] is AmuConfig
    code = (
        "import sys, icb_kedro.pipelines.amu.config, icb_kedro.pipelines.amu.pipeline; "
        "assert 'paddle' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
