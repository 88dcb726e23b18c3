"""Typed ``params:ic2bert_finetune``: every environment parses, typos and bad values are refused,
defaults fill in, and every setting is what the nodes read from the dict before."""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

import pytest

from icb_kedro.evaluation.metrics import THRESHOLD_METHODS
from icb_kedro.models.ic2bert import train_config
from icb_kedro.models.ic2bert.readout import READOUTS
from icb_kedro.models.ic2bert.settings import FinetuneSettings
from icb_kedro.pipelines.ic2bert_finetune.config import BLOCKS, FinetuneParams

WHERE = "params:ic2bert_finetune"
SIZES = (1, 20, 49, 50, 99, 100, 400)  # every size tier


@pytest.fixture(scope="module")
def blocks_by_env(parameters_by_env) -> dict[str, dict]:
    """``params:ic2bert_finetune`` of each environment, soft-merged as a run loads it."""
    return {env: params["ic2bert_finetune"] for env, params in parameters_by_env.items()}


def _read_before(params: dict[str, Any]) -> dict[str, Any]:
    """Every setting as the nodes and models.ic2bert read it from the dict before the block was
    typed (the same ``.get`` defaults), to compare with the typed block."""
    readout = params.get("linear_readout") or {}
    within = params.get("within") or {}
    zero_shot, ensemble = params.get("zero_shot") or {}, params.get("ensemble") or {}
    section, evaluation = params.get("sample_size") or {}, params.get("evaluation") or {}
    ablations = params.get("ablations") or {}
    common = params.get("common")
    values = {
        "seed": int(params.get("seed", 0)),
        "readout": params.get("readout", "per_gene_expected_bin"),
        "Cs": tuple(float(c) for c in readout.get("Cs", (0.001, 0.01, 0.1, 1.0))),
        "n_splits": int(readout.get("n_splits", 5)),
        "context": int(readout.get("context", 0)),
        "batch_size": int(readout.get("batch_size", 8)),
        "calibration": str(readout.get("calibration", "none")),
        "random_init": ablations.get("random_init", True),
        "token_lr": ablations.get("token_lr", True),
        "transfer_protocols": list(params.get("transfer_protocols") or ["transfer"]),
        "n_repeats": params.get("n_repeats"),
        "threshold_method": params.get("threshold_method", "youden"),
        "eval_batch_size": int(params.get("eval_batch_size", 64)),
        "within_enabled": within.get("enabled", True),
        "within_repeats": within.get("n_repeats", params.get("n_repeats")),
        "zero_shot": (zero_shot.get("enabled", True), zero_shot.get("trainable", "head")),
        "ensemble": (ensemble.get("enabled", True), ensemble.get("trainable", "head")),
        "min_samples": int(ensemble.get("min_samples", 10)),
        "cohorts": list(section.get("cohorts") or []),
        "n_train": [int(n) for n in section.get("n_train", [2, 4, 8])],
        "repeats": int(section.get("repeats", 3)),
        "trial": int(section.get("trial", 0)),
        "evaluation": (int(evaluation.get("n_boot", 1000)), int(evaluation.get("seed", 0))),
    }
    for name, head in (("zero_shot_head", zero_shot), ("ensemble_head", ensemble)):
        values[name] = train_config.finetune_config({**(common or {}), **(head.get("head") or {})})
    if "tiers" in params:
        values["tiers"] = [train_config.tier_config(n, params["tiers"], common) for n in SIZES]
    return values


def _read_typed(config: FinetuneParams, with_tiers: bool) -> dict[str, Any]:
    lr, sizes = config.linear_readout, config.sample_size
    values = {
        "seed": config.seed,
        "readout": config.readout,
        "Cs": lr.Cs,
        "n_splits": lr.n_splits,
        "context": lr.context,
        "batch_size": lr.batch_size,
        "calibration": lr.calibration,
        "random_init": config.ablations.random_init,
        "token_lr": config.ablations.token_lr,
        "transfer_protocols": list(config.transfer_protocols),
        "n_repeats": config.n_repeats,
        "threshold_method": config.threshold_method,
        "eval_batch_size": config.eval_batch_size,
        "within_enabled": config.within.enabled,
        "within_repeats": config.within_repeats(),
        "zero_shot": (config.zero_shot.enabled, config.zero_shot.trainable),
        "ensemble": (config.ensemble.enabled, config.ensemble.trainable),
        "min_samples": config.ensemble.min_samples,
        "cohorts": list(sizes.cohorts),
        "n_train": list(sizes.n_train),
        "repeats": sizes.repeats,
        "trial": sizes.trial,
        "evaluation": (config.evaluation.n_boot, config.evaluation.seed),
        "zero_shot_head": config.head_settings(config.zero_shot),
        "ensemble_head": config.head_settings(config.ensemble),
    }
    if with_tiers:
        values["tiers"] = [config.tier_settings(n) for n in SIZES]
    return values


@pytest.mark.parametrize("env", ["base", "light", "paper"])
def test_every_environment_parses_and_reads_as_the_dict_did(blocks_by_env, env) -> None:
    block = blocks_by_env[env]
    config = FinetuneParams.of(block, WHERE)
    assert _read_typed(config, with_tiers=True) == _read_before(block)
    assert config.tier_settings(20).batch_size == block["tiers"]["small"]["batch_size"]


@pytest.mark.parametrize(
    "block",
    [
        {},  # every default
        {"n_repeats": 2, "within": {"enabled": True}},  # within.n_repeats absent: the block's
        {"n_repeats": 2, "within": {"n_repeats": None}},  # null: every repeat
        {"transfer_protocols": [], "sample_size": {"cohorts": None}},  # `or` defaults
        {"within": None, "zero_shot": {"head": None}, "common": None, "linear_readout": None},
        {
            "common": {"optimizer": {"weight_decay": 0.02}, "loss": "focal"},
            "tiers": {
                "small": {"optimizer": {"peak_lr": 1e-3}},  # merged key by key with common's
                "medium": {"batch_size": 4},
                "large": {"optimizer": {"clip_norm": 0.5}, "loss": "bce"},
            },
            "zero_shot": {"head": {"optimizer": {"peak_lr": 1e-2}}},  # replaces common's
            "ensemble": {"head": {"batch_size": 4}},  # keeps common's optimizer
        },
    ],
)
def test_partial_blocks_read_as_the_dict_did(block) -> None:
    config = FinetuneParams.of(block, WHERE)
    assert _read_typed(config, with_tiers="tiers" in block) == _read_before(block)


def test_the_block_is_registered_for_the_run_start_check() -> None:
    from icb_kedro.hooks import typed_parameters

    assert BLOCKS == {"ic2bert_finetune": FinetuneParams}
    assert typed_parameters()["ic2bert_finetune"] is FinetuneParams


def test_a_typo_is_refused_naming_the_key() -> None:
    with pytest.raises(ValueError, match=r"unknown key 'linear_readout.C' \(known here: Cs, "):
        FinetuneParams.of({"linear_readout": {"C": [1.0]}}, WHERE)
    with pytest.raises(ValueError, match=r"unknown key 'tiers.small.max_epoch' \(known here: "):
        FinetuneParams.of({"tiers": {"small": {"max_epoch": 3}}}, WHERE)
    with pytest.raises(ValueError, match=r"unknown key 'zero_shot.head.optimizer.lr'"):
        FinetuneParams.of({"zero_shot": {"head": {"optimizer": {"lr": 1.0}}}}, WHERE)
    with pytest.raises(ValueError, match=r"unknown key 'zero_shot.min_samples'"):
        FinetuneParams.of({"zero_shot": {"min_samples": 3}}, WHERE)  # an ensemble key
    with pytest.raises(ValueError, match=r"'tiers.smal"):
        FinetuneParams.of({"tiers": {"smal": {}}}, WHERE)


@pytest.mark.parametrize(
    ("block", "where"),
    [
        ({"readout": "tokens"}, "readout"),  # an ablation arm, not a readout
        ({"linear_readout": {"calibration": "isotonic"}}, "linear_readout.calibration"),
        ({"linear_readout": {"Cs": []}}, "linear_readout.Cs"),
        ({"linear_readout": {"Cs": [0.0, 1.0]}}, "linear_readout.Cs.0"),
        ({"threshold_method": "f1"}, "threshold_method"),
        ({"transfer_protocols": ["within"]}, "transfer_protocols.0"),
        ({"n_repeats": 0}, "n_repeats"),
        ({"n_repeats": {"transfr": 1}}, "n_repeats"),
        ({"zero_shot": {"trainable": "encoder"}}, "zero_shot.trainable"),
        ({"common": {"loss": "hinge"}}, "common.loss"),
        ({"common": {"encoder_lr_scale": 2.0}}, "common.encoder_lr_scale"),
        ({"tiers": {"small": {"inner_val_fraction": 1.0}}}, "tiers.small.inner_val_fraction"),
        ({"within": {"enabled": "maybe"}}, "within.enabled"),
        ({"sample_size": {"repeats": -1}}, "sample_size.repeats"),
    ],
)
def test_bad_choices_types_and_ranges_are_refused(block, where) -> None:
    with pytest.raises(ValueError, match=rf"{WHERE}: '{where}"):
        FinetuneParams.of(block, WHERE)


def test_defaults_are_what_the_code_did_without_the_keys() -> None:
    config = FinetuneParams.of(None, WHERE)
    assert config.readout == "per_gene_expected_bin" and config.transfer_protocols == ("transfer",)
    assert config.linear_readout.calibration == "none" and config.linear_readout.n_splits == 5
    assert config.n_repeats is None and config.within_repeats() is None
    assert config.sample_size.n_train == (2, 4, 8) and config.sample_size.cohorts == ()
    assert config.head_settings(config.zero_shot) == train_config.FinetuneConfig()
    # A tier the block does not configure fails where it is used, as before (then: KeyError).
    with pytest.raises(ValueError, match="no settings for fine-tuning tier 'small'"):
        config.tier_settings(10)
    assert FinetuneParams.of(config, WHERE) is config  # an instance passes through


def test_the_typed_fields_show_the_algorithms_defaults_and_choices() -> None:
    """One source of truth: FinetuneConfig; the typed settings only refer to its defaults."""
    defaults = FinetuneSettings()
    for field in dataclasses.fields(train_config.FinetuneConfig):
        if field.name != "optimizer":
            assert getattr(defaults, field.name) == field.default, field.name
    assert defaults.given() == {}  # nothing set: nothing merged over common
    fields = FinetuneParams.model_fields
    assert set(get_args(fields["readout"].annotation)) == set(READOUTS) - {"tokens"}
    assert set(get_args(fields["threshold_method"].annotation)) == set(THRESHOLD_METHODS)
    assert set(get_args(fields["tiers"].annotation)[0].__args__) == set(train_config.TIERS)


def test_a_null_optimizer_counts_as_unset_in_the_merge() -> None:
    """(Before, a null optimizer reached FinetuneConfig and failed in the optimiser.)"""
    config = FinetuneParams.of(
        {"common": {"optimizer": None}, "tiers": {"small": {"optimizer": {"peak_lr": 1.0}}}},
        WHERE,
    )
    assert config.tier_settings(10).optimizer == train_config.OptimizerConfig(peak_lr=1.0)
    assert config.head_settings(config.zero_shot).optimizer == (
        train_config.FinetuneConfig().optimizer
    )
