"""Tiny IC2Bert settings and the synthetic cohorts of ``tokenization/synthetic.py``."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ic2bert_synthetic", Path(__file__).parents[1] / "tokenization" / "synthetic.py"
)
synthetic = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(synthetic)

TOKENIZATION = {
    "input": "expression_standardized",
    "panel": "ic2bert_prior",
    "n_bins": 4,
    "mlm_val_fraction": 0.15,
    "seed": 0,
}
# The real modules with a narrow, shallow network (fast on 2 cores).
PRETRAIN = {
    "seed": 0,
    "model": {"d_model": 16, "gene_dim": 8, "n_layers": 1, "n_heads": 2, "ffn_dim": 32},
    "training": {
        "epochs": 2,
        "batch_size": 16,
        "eval_batch_size": 16,
        "checkpoint_every": 1,
        "optimizer": {"peak_lr": 3e-3, "warmup_fraction": 0.1},
    },
    "checkpoint_dir": None,
    "resume": True,
}


@pytest.fixture
def tokenization_params() -> dict:
    return copy.deepcopy(TOKENIZATION)


@pytest.fixture
def pretrain_params() -> dict:
    return copy.deepcopy(PRETRAIN)


@pytest.fixture
def synthetic_data():
    expression = synthetic.synthetic_expression()
    return expression, synthetic.synthetic_folds(expression), synthetic.synthetic_panels()
