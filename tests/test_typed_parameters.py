"""Typed parameter blocks: every environment's parameters parse, and a typo fails loudly."""

from __future__ import annotations

import pytest

from icb_kedro.hooks import ParametersCheckHook, check_parameters, typed_parameters
from icb_kedro.pipelines.folds.config import FoldsConfig, LodocvFolds
from icb_kedro.pipelines.harmonization.config import HarmonizationConfig
from icb_kedro.pipelines.tokenization.config import TokenizationConfig


@pytest.mark.parametrize("env", ["base", "light", "paper"])
def test_every_typed_block_of_every_environment_parses(parameters_by_env, env) -> None:
    params = parameters_by_env[env]
    used = [f"params:{block}" for block in typed_parameters()]
    assert check_parameters(params, used) == sorted(typed_parameters())
    folds = FoldsConfig.of(params["folds"], "params:folds")
    assert folds.lodocv.kfold.n_splits == params["folds"]["lodocv"]["kfold"]["n_splits"]


def test_a_typo_is_refused_naming_the_key_and_the_known_ones() -> None:
    with pytest.raises(ValueError) as error:
        LodocvFolds.of({"kfold": {"n_splitz": 3}}, "params:folds.lodocv")
    message = str(error.value)
    assert "params:folds.lodocv" in message and "unknown key 'kfold.n_splitz'" in message
    assert "known here: n_repeats, n_splits" in message
    # Through optional sub-blocks and mappings of blocks (paper: ... | None; panels: {name: ...})
    with pytest.raises(ValueError, match=r"'paper.n_trial' \(known here: n_trials, test_size\)"):
        LodocvFolds.of({"paper": {"n_trial": 3}}, "params:folds.lodocv")
    with pytest.raises(
        ValueError, match=r"'panels.common.genez' \(known here: genes, present_in\)"
    ):
        HarmonizationConfig.of({"panels": {"common": {"genez": "all"}}}, "params:harmonization")


def test_wrong_types_and_choices_are_refused_and_defaults_fill_in() -> None:
    with pytest.raises(ValueError, match=r"'input': Input should be"):
        TokenizationConfig.of({"input": "raw_counts"}, "params:tokenization")
    with pytest.raises(ValueError, match=r"'mlm_val_fraction'"):
        TokenizationConfig.of({"mlm_val_fraction": 0.7}, "params:tokenization")
    assert TokenizationConfig.of(None, "params:tokenization").n_bins == 4


def test_the_run_start_check_lists_every_bad_block_and_only_reads_used_ones() -> None:
    bad = {"folds": {"lodocv": {"base_seed": "x"}}, "tokenization": {"nbins": 4}}
    with pytest.raises(ValueError) as error:
        check_parameters(bad, ["params:folds.lodocv", "params:tokenization", "expression"])
    assert "params:folds" in str(error.value) and "params:tokenization" in str(error.value)
    # A block the run does not read is not checked (a pipeline never fails on another's typo).
    assert check_parameters(bad, ["params:evaluation"]) == ["evaluation"]


def test_the_check_is_a_registered_project_hook() -> None:
    from icb_kedro.settings import HOOKS

    assert any(isinstance(hook, ParametersCheckHook) for hook in HOOKS)
    # Before kedro-mlflow opens its run: a bad parameter must leave no empty FINISHED run.
    assert ParametersCheckHook.before_pipeline_run.kedro_impl["tryfirst"] is True
