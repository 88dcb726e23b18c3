"""One held-out cohort's IC2Bert pretraining run, as the ic2bert_pretrain pipeline runs it.

``pretraining_pool`` reads h's pretraining pool (training and MLM-validation keys) and checks
that h never pretrains; ``check_gene_order`` that the token columns follow the tokenizer;
``pretrain_held_out`` runs ``pretrain_loop.pretrain`` (resumable: checkpoints in a folder per
run fingerprint) and returns the model bundle, the per-epoch history (with n_bins and the
parameter count) and the MLflow metric histories (``mlm_metric_histories``).
JAX is imported inside the function bodies.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.models.ic2bert.tokenizer import SPLIT_TRAIN, SPLIT_VAL, token_matrix
from icb_kedro.schema import COHORT, SAMPLE_KEY

logger = logging.getLogger(__name__)


def pretraining_pool(
    tokens: pd.DataFrame, pretrain_split: pd.DataFrame, held_out: str
) -> tuple[list[str], list[str]]:
    """(training keys, MLM-validation keys) of h's pretraining pool, which must hold no sample
    of h (the guarantee of the whole pretraining pipeline)."""
    split_held_out = set(pretrain_split["held_out"])
    if split_held_out != {held_out}:
        raise ValueError(f"pretraining split belongs to {sorted(split_held_out)}, not {held_out!r}")
    train_keys = pretrain_split.loc[pretrain_split["split"] == SPLIT_TRAIN, SAMPLE_KEY].tolist()
    val_keys = pretrain_split.loc[pretrain_split["split"] == SPLIT_VAL, SAMPLE_KEY].tolist()
    pool_cohorts = set(tokens.loc[tokens[SAMPLE_KEY].isin(train_keys + val_keys), COHORT])
    if held_out in pool_cohorts:  # the guarantee of this whole pipeline: h never pretrains
        raise ValueError(f"pretraining pool of {held_out!r} contains its own samples")
    return train_keys, val_keys


def check_gene_order(tokens: pd.DataFrame, bins) -> None:
    """The token table's gene columns must be the tokenizer's genes, in its order."""
    if tuple(c for c in tokens.columns if c in set(bins.genes)) != bins.genes:
        raise ValueError("token columns are not in the tokenizer's gene order")


def mlm_metric_histories(history: pd.DataFrame) -> dict[str, list[dict[str, float]]]:
    """The pretraining history as MLflow metric histories (one value per epoch)."""
    return {
        name: [
            {"value": float(v), "step": int(e)}
            for e, v in zip(history["epoch"], history[column], strict=True)
        ]
        for name, column in (
            ("mlm_val_accuracy", "val_accuracy"),
            ("mlm_val_loss", "val_loss"),
            ("mlm_train_loss", "train_loss"),
        )
    }


def pretrain_held_out(
    tokens: pd.DataFrame,
    train_keys: list[str],
    val_keys: list[str],
    model_config,
    bins,
    config,
    seed: int,
    directory: Path | None,
    resume: bool,
    held_out: str,
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, list[dict[str, float]]]]:
    """Pretrain IC2Bert on h's pool (``config``: ``train_config.PretrainConfig``).

    Checkpoints go to ``directory / <run fingerprint>`` when ``directory`` is set and
    ``resume`` is true. Returns the model bundle (config, best-epoch params, frozen tokenizer),
    the per-epoch history and the same history as MLflow metric histories.
    """
    import jax
    import numpy as np

    from icb_kedro.models.ic2bert.checkpoint import ModelBundle, PretrainCheckpointer, fingerprint
    from icb_kedro.models.ic2bert.pretrain_loop import pretrain

    train_tokens, val_tokens = token_matrix(tokens, train_keys), token_matrix(tokens, val_keys)

    run_id = fingerprint(
        model_config.to_dict(), repr(config), seed, train_tokens, val_tokens, bins.edges
    )
    # One folder per run fingerprint: orbax numbers checkpoints by epoch, so a run with other
    # settings (n_bins, seed, epochs, data) sharing the folder would collide with the old
    # epochs (StepAlreadyExistsError) or hide its own checkpoints behind higher ones.
    checkpointer = (
        PretrainCheckpointer(directory / run_id) if directory is not None and resume else None
    )
    logger.info(
        "Pretraining IC2Bert for held-out %s: %d train / %d validation samples, %d genes, "
        "%d bins, %d epochs",
        held_out,
        len(train_keys),
        len(val_keys),
        model_config.n_genes,
        model_config.n_bins,
        config.epochs,
    )
    result = pretrain(model_config, train_tokens, val_tokens, config, seed, checkpointer, run_id)
    if checkpointer is not None:
        checkpointer.close()
    # n_bins and the parameter count travel with the history: MLM accuracy vs n_bins (the
    # paper's Table) is read off histories of runs (or grid cells) with different n_bins.
    n_params = int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(result.params)))
    history = result.history.assign(
        held_out=held_out,
        best_epoch=result.best_epoch,
        n_bins=model_config.n_bins,
        n_params=n_params,
    )
    bundle = ModelBundle(
        model_config,
        result.params,
        bins,
        {
            "held_out": held_out,
            "stage": "pretrained",
            "best_epoch": result.best_epoch,
            "best_val_mlm_accuracy": float(
                history.loc[history["epoch"] == result.best_epoch, "val_accuracy"].iloc[0]
            ),
            "n_pretrain_samples": len(train_keys),
            "n_params": n_params,
            "seed": seed,
        },
    )
    return bundle.to_dict(), history, mlm_metric_histories(history)
