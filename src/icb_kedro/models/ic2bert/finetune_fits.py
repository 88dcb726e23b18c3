"""One IC2Bert fit inside a protocol: fine-tuning on a set of rows and scoring with the result.

``_fit_full`` fine-tunes every parameter with the tier settings of the cohort's size and fits
a decision threshold on training rows only; ``_train_source_model`` trains a model on source
cohorts' labels (the head on frozen pooled features, or everything) for the zero-shot head and
the ensemble; ``_score`` / ``_predict_with`` give P(responder) of rows; ``_inner_val_loss`` is
the chosen epoch's inner-validation loss (what picks the registered transfer trial).
JAX is imported inside the function bodies (the training and prediction modules).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.models.ic2bert.fold_inputs import _labels
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.models.ic2bert.train_config import finetune_config, size_tier, tier_config


def _tier_settings(params: dict[str, Any], n_samples: int):
    return size_tier(n_samples), tier_config(n_samples, params["tiers"], params.get("common"))


def _fit_full(bundle, init_params, keys, tokens, params, seed: int, tier_n: int):
    """Fine-tune all parameters on ``keys``; returns (result, threshold fitted on those rows).

    The threshold comes from the inner-validation rows (training rows the chosen epoch did
    not fit on) when they hold both classes; otherwise from every training row, where the
    network's near-memorised probabilities make it optimistic.
    """
    from icb_kedro.models.ic2bert.finetune_loop import finetune
    from icb_kedro.models.ic2bert.predict import predict_proba

    tier, config = _tier_settings(params, tier_n)
    x, y = token_matrix(tokens, keys), _labels(tokens, keys)
    result = finetune(bundle.config, init_params, x, y, config, seed, tier)
    val_idx = result.val_idx  # the inner split this fit chose its epoch on
    rows = val_idx if len(val_idx) and len(np.unique(y[val_idx])) == 2 else np.arange(len(y))
    p_rows = predict_proba(bundle.config, result.params, x[rows], config.eval_batch_size)
    threshold = fit_threshold(y[rows], p_rows, params.get("threshold_method", "youden"))
    return result, threshold


def _inner_val_loss(result) -> float:
    """Inner-validation BCE of the chosen epoch (inf without a validation split): one scale
    on which trials selected by inner AUROC and by inner loss compare fairly."""
    history = result.history
    if "val_loss" not in history or history["val_loss"].isna().all():
        return float("inf")
    return float(history.loc[history["epoch"] == result.best_epoch, "val_loss"].iloc[0])


def _score(bundle, model_params, keys, tokens, batch_size: int) -> np.ndarray:
    from icb_kedro.models.ic2bert.predict import predict_proba

    return predict_proba(bundle.config, model_params, token_matrix(tokens, keys), batch_size)


def _train_source_model(bundle, features, tokens, keys, params, section: dict[str, Any], seed: int):
    """A model trained on source labels only: head on frozen features, or everything.

    Returns (params, threshold on its training rows, result).
    """
    from icb_kedro.models.ic2bert.finetune_loop import train_head
    from icb_kedro.models.ic2bert.predict import head_proba

    trainable = section.get("trainable", "head")
    y = _labels(tokens, keys)
    if trainable == "head":
        config = finetune_config({**(params.get("common") or {}), **(section.get("head") or {})})
        x = np.stack([features[k] for k in keys])
        result = train_head(bundle.config, bundle.params, x, y, config, seed, size_tier(len(keys)))
        p_train = head_proba(result.params, x)
    elif trainable == "all":
        result, _ = _fit_full(bundle, bundle.params, keys, tokens, params, seed, len(keys))
        p_train = _score(
            bundle, result.params, keys, tokens, int(params.get("eval_batch_size", 64))
        )
    else:
        raise ValueError(f"trainable must be 'head' or 'all', got {trainable!r}")
    return (
        result.params,
        fit_threshold(y, p_train, params.get("threshold_method", "youden")),
        result,
    )


def _predict_with(bundle, model_params, features, tokens, keys, section, params) -> np.ndarray:
    from icb_kedro.models.ic2bert.predict import head_proba

    if section.get("trainable", "head") == "head":
        return head_proba(model_params, np.stack([features[k] for k in keys]))
    return _score(bundle, model_params, keys, tokens, int(params.get("eval_batch_size", 64)))
