"""Nodes of the ic2bert_pretrain pipeline (JAX is imported lazily inside the node bodies).

One pretraining per held-out cohort h, on h's pretraining pool (other cohorts only) with
the fold's frozen tokenizer; the checkpoint with the best masked-token accuracy on the
pool's validation rows is kept. Resumable: see ``icb_kedro.models.ic2bert.checkpoint``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.models.ic2bert.tokenizer import SPLIT_TRAIN, SPLIT_VAL, token_matrix
from icb_kedro.paths import namespace_for, project_root
from icb_kedro.schema import COHORT, SAMPLE_KEY

logger = logging.getLogger(__name__)

MODEL_KEYS = (
    "d_model",
    "gene_dim",
    "n_layers",
    "n_heads",
    "ffn_dim",
    "dropout",
    "attention",
    "matmul_dtype",
    "dropout_rng",
    "scan_layers",
)


def model_config_from(params: dict[str, Any], tokenizer: pd.DataFrame):
    """IC2BertConfig from ``params.model``; genes and bins always come from the tokenizer."""
    from icb_kedro.models.ic2bert.config import IC2BertConfig
    from icb_kedro.models.ic2bert.tokenizer import QuantileBins

    bins = QuantileBins.from_frame(tokenizer)
    model = dict(params.get("model") or {})
    unknown = sorted(set(model) - set(MODEL_KEYS))
    if unknown:
        raise ValueError(
            f"unknown ic2bert_pretrain.model keys {unknown}; allowed {list(MODEL_KEYS)}"
        )
    return IC2BertConfig(n_genes=len(bins.genes), n_bins=bins.n_bins, **model), bins


def checkpoint_directory(params: dict[str, Any], held_out: str) -> Path | None:
    """``<checkpoint_dir>/<namespace>/pretrain`` (relative paths from the project root), or None.

    Each run keeps its checkpoints in a sub-folder named by its fingerprint (see
    ``pretrain_fold``), so runs of other settings in the same folder never collide.
    """
    root = params.get("checkpoint_dir")
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
    history (one row per epoch) and the same history as MLflow metric histories.
    """
    import jax
    import numpy as np

    from icb_kedro.models.ic2bert import train
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle, PretrainCheckpointer, fingerprint

    split_held_out = set(pretrain_split["held_out"])
    if split_held_out != {held_out}:
        raise ValueError(f"pretraining split belongs to {sorted(split_held_out)}, not {held_out!r}")
    train_keys = pretrain_split.loc[pretrain_split["split"] == SPLIT_TRAIN, SAMPLE_KEY].tolist()
    val_keys = pretrain_split.loc[pretrain_split["split"] == SPLIT_VAL, SAMPLE_KEY].tolist()
    pool_cohorts = set(tokens.loc[tokens[SAMPLE_KEY].isin(train_keys + val_keys), COHORT])
    if held_out in pool_cohorts:  # the guarantee of this whole pipeline: h never pretrains
        raise ValueError(f"pretraining pool of {held_out!r} contains its own samples")
    model_config, bins = model_config_from(params, tokenizer)
    if tuple(c for c in tokens.columns if c in set(bins.genes)) != bins.genes:
        raise ValueError("token columns are not in the tokenizer's gene order")
    config = train.pretrain_config(params.get("training"))
    seed = int(params.get("seed", 0))
    train_tokens, val_tokens = token_matrix(tokens, train_keys), token_matrix(tokens, val_keys)

    run_id = fingerprint(
        model_config.to_dict(), repr(config), seed, train_tokens, val_tokens, bins.edges
    )
    directory = checkpoint_directory(params, held_out)
    # One folder per run fingerprint: orbax numbers checkpoints by epoch, so a run with other
    # settings (n_bins, seed, epochs, data) sharing the folder would collide with the old
    # epochs (StepAlreadyExistsError) or hide its own checkpoints behind higher ones.
    checkpointer = (
        PretrainCheckpointer(directory / run_id)
        if directory is not None and params.get("resume", True)
        else None
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
    result = train.pretrain(
        model_config, train_tokens, val_tokens, config, seed, checkpointer, run_id
    )
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
    metrics = {
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
    return bundle.to_dict(), history, metrics


def combine_pretrain_histories(*histories: pd.DataFrame) -> pd.DataFrame:
    """All folds' pretraining histories in one table (``held_out`` column)."""
    if not histories:
        raise ValueError("no pretraining histories to combine")
    return pd.concat(histories, ignore_index=True)


def plot_pretrain_curves(history: pd.DataFrame):
    """Validation masked-token accuracy per epoch, one line per held-out cohort."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for held_out, rows in history.groupby("held_out"):
        axes[0].plot(rows["epoch"], rows["val_accuracy"], marker="o", label=held_out)
        axes[1].plot(rows["epoch"], rows["train_loss"], marker="o", label=held_out)
    axes[0].set(
        xlabel="epoch", ylabel="validation masked-token accuracy", title="IC2Bert pretraining"
    )
    axes[1].set(xlabel="epoch", ylabel="training MLM loss")
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    return figure
