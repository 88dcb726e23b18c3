"""Synthetic cohorts tokenized and pretrained with a tiny IC2Bert, shared by the finetune tests."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest

_spec = importlib.util.spec_from_file_location(
    "ic2bert_synthetic", Path(__file__).parents[1] / "tokenization" / "synthetic.py"
)
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)

TOKENIZATION = {
    "input": "expression_standardized",
    "panel": "common",
    "n_bins": 4,
    "mlm_val_fraction": 0.15,
    "seed": 0,
}
PRETRAIN = {
    "seed": 0,
    "model": {"d_model": 16, "gene_dim": 8, "n_layers": 1, "n_heads": 2, "ffn_dim": 32},
    "training": {
        "epochs": 2,
        "batch_size": 16,
        "eval_batch_size": 16,
        "optimizer": {"peak_lr": 3e-3, "warmup_fraction": 0.1},
    },
    "checkpoint_dir": None,
}
_TIER = {
    "batch_size": 8,
    "max_epochs": 4,
    "min_epochs": 2,
    "patience": 2,
    "optimizer": {"peak_lr": 3e-3, "warmup_fraction": 0.1},
}
_HEAD = {
    "batch_size": 16,
    "max_epochs": 10,
    "min_epochs": 3,
    "patience": 3,
    "optimizer": {"peak_lr": 1e-2, "warmup_fraction": 0.05},
}
FINETUNE = {
    "seed": 0,
    "readout": "pooled_head",  # the paper's; the linear readouts: READOUT_PARAMS below
    "n_repeats": 1,  # one round of 3-fold (tokenization/synthetic.py): trials 0, 1, 2
    "transfer_rows": {"transfer": "target"},  # as conf/paper: the pooled head fine-tunes on h only
    "threshold_method": "youden",
    "eval_batch_size": 16,
    "common": {
        "loss": "auto",
        "inner_val_fraction": 0.25,
        "eval_batch_size": 16,
        "linear_probe_epochs": 2,
        "encoder_lr_scale": 0.1,
    },
    "tiers": {"small": _TIER, "medium": _TIER, "large": _TIER},
    "within": {"enabled": True, "n_repeats": 1},
    "zero_shot": {"enabled": True, "trainable": "head", "head": _HEAD},
    "ensemble": {"enabled": True, "trainable": "head", "min_samples": 10, "head": _HEAD},
    "sample_size": {"cohorts": ["CohortA"], "n_train": [2, 4, 100], "repeats": 2, "trial": 0},
    "evaluation": {"n_boot": 50, "seed": 0},
}


@pytest.fixture
def finetune_params() -> dict[str, Any]:
    return copy.deepcopy(FINETUNE)


@pytest.fixture
def readout_params() -> dict[str, Any]:
    """The default (conf/base) readout: per-gene expected bins -> L2-LR, with the ablations,
    transfer trained on the labelled sources + h's target_train (``transfer_rows`` default)."""
    return {
        **{k: v for k, v in copy.deepcopy(FINETUNE).items() if k != "transfer_rows"},
        "readout": "per_gene_expected_bin",
        "linear_readout": {
            "Cs": [0.01, 1.0],
            "n_splits": 3,
            "calibration": "platt",
        },  # the registered readout carries the map
        "ablations": {"random_init": True, "token_lr": True},
    }


@pytest.fixture(scope="session")
def world() -> dict[str, Any]:
    """Per cohort: fold table, tokens and the pretrained bundle (real nodes, tiny model)."""
    from icb_kedro.pipelines.ic2bert_pretrain.nodes import pretrain_fold
    from icb_kedro.pipelines.tokenization.nodes import (
        fit_tokenizer,
        select_model_input,
        split_pretraining_pool,
        tokenize_samples,
    )

    expression = synthetic.synthetic_expression()
    folds = synthetic.synthetic_folds(expression)
    model_input = select_model_input(
        expression, expression, synthetic.synthetic_panels(), TOKENIZATION
    )
    per_cohort = {}
    for cohort in synthetic.COHORTS:
        split = split_pretraining_pool(folds[cohort], TOKENIZATION, cohort)
        tokenizer = fit_tokenizer(model_input, split, TOKENIZATION)
        tokens = tokenize_samples(model_input, tokenizer)
        pretrained, _, _ = pretrain_fold(tokens, split, tokenizer, PRETRAIN, cohort)
        per_cohort[cohort] = {"folds": folds[cohort], "tokens": tokens, "pretrained": pretrained}
    return {
        "expression": expression,
        "folds": folds,
        "cohorts": per_cohort,
        "tokenization": TOKENIZATION,
        "pretrain": PRETRAIN,
    }
