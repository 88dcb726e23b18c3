"""Nodes of the ic2bert_pretrain pipeline: thin wiring around
``icb_kedro.models.ic2bert.pretraining`` (JAX is imported lazily there).

One pretraining per held-out cohort h, on h's pretraining pool (other cohorts only) with
the fold's frozen tokenizer; the checkpoint with the best masked-token accuracy on the
pool's validation rows is kept. Resumable: see ``icb_kedro.models.ic2bert.checkpoint``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.models.ic2bert.pretraining import (
    check_gene_order,
    pretrain_held_out,
    pretraining_pool,
)
from icb_kedro.paths import namespace_for, project_root

from .config import PretrainConfig

WHERE = "params:ic2bert_pretrain"


def model_config_from(params: PretrainConfig | dict[str, Any], tokenizer: pd.DataFrame):
    """IC2BertConfig from ``params.model``; genes and bins always come from the tokenizer."""
    from icb_kedro.models.ic2bert.tokenizer import QuantileBins

    bins = QuantileBins.from_frame(tokenizer)
    config = PretrainConfig.of(params, WHERE)
    return config.architecture(len(bins.genes), bins.n_bins), bins


def checkpoint_directory(params: PretrainConfig | dict[str, Any], held_out: str) -> Path | None:
    """``<checkpoint_dir>/<namespace>/pretrain`` (relative paths from the project root), or None.

    Each run keeps its checkpoints in a sub-folder named by its fingerprint (see
    ``pretrain_fold``), so runs of other settings in the same folder never collide.
    """
    root = PretrainConfig.of(params, WHERE).checkpoint_dir
    if not root:
        return None
    path = Path(root)
    if not path.is_absolute():
        path = project_root() / path
    return path / namespace_for(held_out) / "pretrain"


def pretrain_fold(
    tokens: pd.DataFrame,
    pretrain_split: pd.DataFrame,
    tokenizer: pd.DataFrame,
    params: dict[str, Any],
    held_out: str,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, list[dict[str, float]]]]:
    """Pretrain IC2Bert for held-out cohort ``held_out``.

    Returns the model bundle (config, best-epoch params, frozen tokenizer), the per-epoch
    history (one row per epoch) and the same history as MLflow metric histories
    (``models.ic2bert.pretraining.pretrain_held_out``).
    """
    config = PretrainConfig.of(params, WHERE)
    train_keys, val_keys = pretraining_pool(tokens, pretrain_split, held_out)
    model_config, bins = model_config_from(config, tokenizer)
    check_gene_order(tokens, bins)
    return pretrain_held_out(
        tokens,
        train_keys,
        val_keys,
        model_config,
        bins,
        config.training_config(),
        config.seed,
        checkpoint_directory(config, held_out),
        config.resume,
        held_out,
    )


def combine_pretrain_histories(*histories: pd.DataFrame) -> pd.DataFrame:
    """All folds' pretraining histories in one table (``held_out`` column)."""
    if not histories:
        raise ValueError("no pretraining histories to combine")
    return pd.concat(histories, ignore_index=True)


def plot_pretrain_curves(history: pd.DataFrame):
    """Validation masked-token accuracy and training MLM loss per epoch, one line per held-out
    cohort (``reporting.study_plots``, as the report draws it)."""
    from icb_kedro.reporting.study_plots import plot_mlm_accuracy

    return plot_mlm_accuracy(history, with_training_loss=True)
