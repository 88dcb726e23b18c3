"""Typed ``params:ic2bert_pretrain``: every environment parses, typos and bad values are refused,
defaults fill in, and the algorithm's settings are built exactly as from the dict before."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest

from icb_kedro.models.ic2bert import config as architecture
from icb_kedro.models.ic2bert import train_config
from icb_kedro.models.ic2bert.config import IC2BertConfig
from icb_kedro.models.ic2bert.settings import ModelSettings
from icb_kedro.pipelines.ic2bert_pretrain.config import BLOCKS, PretrainConfig
from icb_kedro.pipelines.ic2bert_pretrain.nodes import checkpoint_directory

WHERE = "params:ic2bert_pretrain"


@pytest.fixture(scope="module")
def blocks_by_env(parameters_by_env) -> dict[str, dict]:
    """``params:ic2bert_pretrain`` of each environment, soft-merged as a run loads it."""
    return {env: params["ic2bert_pretrain"] for env, params in parameters_by_env.items()}


def _old_architecture(block: dict, n_genes: int, n_bins: int) -> IC2BertConfig:
    """What ``nodes.model_config_from`` built from the dict before the block was typed."""
    return IC2BertConfig(n_genes=n_genes, n_bins=n_bins, **dict(block.get("model") or {}))


@pytest.mark.parametrize("env", ["base", "light", "paper"])
def test_every_environment_parses_and_builds_what_the_dict_built(blocks_by_env, env) -> None:
    block = blocks_by_env[env]
    config = PretrainConfig.of(block, WHERE)
    assert config.model.d_model == block["model"]["d_model"]
    assert config.training.epochs == block["training"]["epochs"]
    # The algorithm's settings: equal, and the same repr (it keys the resumable checkpoints).
    before = train_config.pretrain_config(block.get("training"))
    assert config.training_config() == before and repr(config.training_config()) == repr(before)
    old = _old_architecture(block, 937, 4)
    assert config.architecture(937, 4) == old and config.architecture(937, 4).to_dict() == (
        old.to_dict()
    )
    assert (config.seed, config.resume) == (int(block.get("seed", 0)), block.get("resume", True))
    assert config.checkpoint_dir == block.get("checkpoint_dir")


def test_the_block_is_registered_for_the_run_start_check() -> None:
    from icb_kedro.hooks import typed_parameters

    assert BLOCKS == {"ic2bert_pretrain": PretrainConfig}
    assert typed_parameters()["ic2bert_pretrain"] is PretrainConfig


def test_a_typo_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'training.epoch' \(known here: .*epochs"):
        PretrainConfig.of({"training": {"epoch": 3}}, WHERE)
    with pytest.raises(ValueError, match=r"unknown key 'model.d_modl'"):
        PretrainConfig.of({"model": {"d_modl": 3}}, WHERE)
    with pytest.raises(ValueError, match=r"unknown key 'training.optimizer.lr' \(known here: "):
        PretrainConfig.of({"training": {"optimizer": {"lr": 1e-3}}}, WHERE)
    with pytest.raises(ValueError, match=r"unknown key 'checkpoint'"):
        PretrainConfig.of({"checkpoint": "x"}, WHERE)


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({"model": {"attention": "flash"}}, "model.attention"),
        ({"model": {"matmul_dtype": "float16"}}, "model.matmul_dtype"),
        ({"model": {"dropout": 1.0}}, "model.dropout"),
        ({"model": {"d_model": 30, "n_heads": 4}}, "model"),  # heads must divide the width
        ({"training": {"epochs": 0}}, "training.epochs"),
        ({"training": {"gene_subset": -1}}, "training.gene_subset"),
        ({"training": {"optimizer": {"peak_lr": 0}}}, "training.optimizer.peak_lr"),
        ({"training": {"optimizer": {"warmup_fraction": 1.5}}}, "training.optimizer"),
        ({"training": {"masking": {"mask_prob": 0.95}}}, "training.masking"),  # + random 0.1
        ({"resume": "sometimes"}, "resume"),
    ],
)
def test_bad_choices_types_and_ranges_are_refused(block, where) -> None:
    with pytest.raises(ValueError, match=rf"{WHERE}: '{where}"):
        PretrainConfig.of(block, WHERE)


def test_defaults_are_what_the_code_did_without_the_keys() -> None:
    config = PretrainConfig.of(None, WHERE)
    assert (config.seed, config.checkpoint_dir, config.resume) == (0, None, True)
    # Without model / training: the dataclasses' defaults (the paper's model, 10 epochs).
    assert config.architecture(10, 4) == IC2BertConfig(n_genes=10, n_bins=4)
    assert config.training_config() == train_config.PretrainConfig()
    assert config.training.epochs == 10 and config.model.d_model == 128
    # A partial optimizer / masking is completed from OptimizerConfig / MaskingConfig.
    partial = PretrainConfig.of({"training": {"optimizer": {"peak_lr": 3e-3}}}, WHERE)
    assert partial.training_config().optimizer == train_config.OptimizerConfig(peak_lr=3e-3)
    # Lax parsing: "4" is 4 (the dataclass then holds an int, as from the YAML).
    assert PretrainConfig.of({"training": {"epochs": "4"}}, WHERE).training_config().epochs == 4
    assert PretrainConfig.of(config, WHERE) is config  # an instance passes through
    # A null sub-block reads as an absent one (the dict reads were `params.get("model") or {}`).
    assert PretrainConfig.of({"model": None, "training": None}, WHERE) == config


def test_the_typed_fields_show_the_dataclasses_defaults_and_choices() -> None:
    """One source of truth: the dataclasses; the typed block only refers to their defaults."""
    defaults = ModelSettings()
    for field in dataclasses.fields(IC2BertConfig):
        if field.name not in ("n_genes", "n_bins"):
            assert getattr(defaults, field.name) == field.default, field.name
    fields = ModelSettings.model_fields
    assert set(get_args(fields["attention"].annotation)) == set(
        architecture.ATTENTION_IMPLEMENTATIONS
    )
    assert set(get_args(fields["matmul_dtype"].annotation)) == set(architecture.MATMUL_DTYPES)
    assert set(get_args(fields["dropout_rng"].annotation)) == set(architecture.DROPOUT_RNGS)
    training = PretrainConfig().training
    for field in dataclasses.fields(train_config.PretrainConfig):
        if field.name not in ("optimizer", "masking"):
            assert getattr(training, field.name) == field.default, field.name
    assert train_config.OptimizerConfig(**training.optimizer.model_dump()) == (
        train_config.PretrainConfig().optimizer
    )
    assert train_config.MaskingConfig(**training.masking.model_dump()) == (
        train_config.MaskingConfig()
    )


def test_checkpoint_directory_accepts_the_dict_or_the_typed_block(tmp_path) -> None:
    block = {"checkpoint_dir": str(tmp_path)}
    expected = tmp_path / "fold_CohortA" / "pretrain"
    assert checkpoint_directory(block, "CohortA") == expected
    assert checkpoint_directory(PretrainConfig.of(block, WHERE), "CohortA") == expected
    assert checkpoint_directory({"checkpoint_dir": ""}, "CohortA") is None
    assert checkpoint_directory({}, "CohortA") is None
