"""One IC2Bert fit inside a protocol: fine-tuning on a set of rows and scoring with the result.

``fit_full`` fine-tunes every parameter with the tier settings of the cohort's size and fits
a decision threshold on training rows only; ``train_source_model`` trains a model on source
cohorts' labels (the head on frozen pooled features, or everything) for the zero-shot head and
the ensemble; ``score_keys`` / ``predict_with`` give P(responder) of rows; ``inner_val_loss`` is
the chosen epoch's inner-validation loss (what picks the registered transfer trial).
``params`` is the typed ``params:ic2bert_finetune`` (``pipelines.ic2bert_finetune.config``).
JAX is imported inside the function bodies (the training and prediction modules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.models.ic2bert.fold_inputs import labels_of
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.models.ic2bert.train_config import size_tier

if TYPE_CHECKING:
    from icb_kedro.pipelines.ic2bert_finetune.config import FinetuneParams, SourceModels


def _tier_settings(params: FinetuneParams, n_samples: int):
    return size_tier(n_samples), params.tier_settings(n_samples)


def fit_full(bundle, init_params, keys, tokens, params: FinetuneParams, seed: int, tier_n: int):
    """Fine-tune all parameters on ``keys``; returns (result, threshold fitted on those rows).

    The threshold comes from the inner-validation rows (training rows the chosen epoch did
    not fit on) when they hold both classes; otherwise from every training row, where the
    network's near-memorised probabilities make it optimistic.
    """
    from icb_kedro.models.ic2bert.finetune_loop import finetune
    from icb_kedro.models.ic2bert.predict import predict_proba

    tier, config = _tier_settings(params, tier_n)
    x, y = token_matrix(tokens, keys), labels_of(tokens, keys)
    result = finetune(bundle.config, init_params, x, y, config, seed, tier)
    val_idx = result.val_idx  # the inner split this fit chose its epoch on
    rows = val_idx if len(val_idx) and len(np.unique(y[val_idx])) == 2 else np.arange(len(y))
    p_rows = predict_proba(bundle.config, result.params, x[rows], config.eval_batch_size)
    threshold = fit_threshold(y[rows], p_rows, params.threshold_method)
    return result, threshold


def inner_val_loss(result) -> float:
    """Inner-validation BCE of the chosen epoch (inf without a validation split): one scale
    on which trials selected by inner AUROC and by inner loss compare fairly."""
    history = result.history
    if "val_loss" not in history or history["val_loss"].isna().all():
        return float("inf")
    return float(history.loc[history["epoch"] == result.best_epoch, "val_loss"].iloc[0])


def score_keys(bundle, model_params, keys, tokens, batch_size: int) -> np.ndarray:
    from icb_kedro.models.ic2bert.predict import predict_proba

    return predict_proba(bundle.config, model_params, token_matrix(tokens, keys), batch_size)


def train_source_model(
    bundle, features, tokens, keys, params: FinetuneParams, section: SourceModels, seed: int
):
    """A model trained on source labels only: head on frozen features, or everything.

    Returns (params, threshold on its training rows, result).
    """
    from icb_kedro.models.ic2bert.finetune_loop import train_head
    from icb_kedro.models.ic2bert.predict import head_proba

    trainable = section.trainable
    y = labels_of(tokens, keys)
    if trainable == "head":
        config = params.head_settings(section)
        x = np.stack([features[k] for k in keys])
        result = train_head(bundle.config, bundle.params, x, y, config, seed, size_tier(len(keys)))
        p_train = head_proba(result.params, x)
    elif trainable == "all":
        result, _ = fit_full(bundle, bundle.params, keys, tokens, params, seed, len(keys))
        p_train = score_keys(bundle, result.params, keys, tokens, params.eval_batch_size)
    else:
        raise ValueError(f"trainable must be 'head' or 'all', got {trainable!r}")
    return (
        result.params,
        fit_threshold(y, p_train, params.threshold_method),
        result,
    )


def predict_with(
    bundle, model_params, features, tokens, keys, section: SourceModels, params: FinetuneParams
) -> np.ndarray:
    from icb_kedro.models.ic2bert.predict import head_proba

    if section.trainable == "head":
        return head_proba(model_params, np.stack([features[k] for k in keys]))
    return score_keys(bundle, model_params, keys, tokens, params.eval_batch_size)
