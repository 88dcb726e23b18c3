"""The ``loco`` protocols of IC2Bert for one held-out cohort h: no label of h is used.

* zero-shot (model ``ic2bert``): a classification head trained on the other cohorts' labels
  only (spec item 13: the original applies an untrained head), on frozen pretrained features
  (``zero_shot.trainable: head``) or fine-tuning everything (``all``); with a linear readout,
  one readout per arm (IC2Bert and its ablations) fitted on those rows;
* ensemble (model ``ic2bert_ensemble``): one model per source cohort with enough labelled
  rows of both classes (``_ensemble_sources``), probabilities averaged.
Both score every labelled sample of h. ``loco_finetuned`` is the pooled-head version,
``loco_readouts`` the linear-readout one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.evaluation.protocols import FoldSpec
from icb_kedro.models.ic2bert.finetune_fits import _predict_with, _train_source_model
from icb_kedro.models.ic2bert.finetune_history import _history, _readout_history, empty_history
from icb_kedro.models.ic2bert.fold_inputs import (
    ENSEMBLE_MODEL,
    MODEL,
    _cohort_of,
    _labels,
    _specs,
)
from icb_kedro.models.ic2bert.readout_arms import _ReadoutArms
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.schema import empty_predictions, prediction_frame

logger = logging.getLogger(__name__)


def loco_finetuned(
    bundle, tokens: pd.DataFrame, folds: pd.DataFrame, params: dict[str, Any], held_out: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``loco`` predictions of the zero-shot head (model ``ic2bert``) and the
    per-source ensemble."""
    from icb_kedro.models.ic2bert.predict import pooled_features

    zero_shot, ensemble = params.get("zero_shot") or {}, params.get("ensemble") or {}
    specs = _specs(folds, "loco", held_out, None)
    spec = specs[0]
    keys = sorted(set(spec.train_keys) | set(spec.test_keys))
    pooled = pooled_features(
        bundle.config,
        bundle.params,
        token_matrix(tokens, keys),
        int(params.get("eval_batch_size", 64)),
    )
    features = dict(zip(keys, pooled, strict=True))  # frozen pretrained features (label-free)
    seed = int(params.get("seed", 0))
    tables, histories = [], []
    y_test = _labels(tokens, spec.test_keys)
    if zero_shot.get("enabled", True):
        model_params, threshold, result = _train_source_model(
            bundle, features, tokens, spec.train_keys, params, zero_shot, seed
        )
        y_prob = _predict_with(
            bundle, model_params, features, tokens, spec.test_keys, zero_shot, params
        )
        tables.append(prediction_frame(MODEL, spec, y_test, y_prob, threshold))
        histories.append(_history(result, held_out, "loco", spec.trial, "zero_shot"))
    if ensemble.get("enabled", True):
        members, probs, train_probs = [], [], []
        for source, member_keys, y in _ensemble_sources(tokens, spec, ensemble, held_out):
            model_params, _, result = _train_source_model(
                bundle, features, tokens, member_keys, params, ensemble, seed
            )
            probs.append(
                _predict_with(
                    bundle, model_params, features, tokens, spec.test_keys, ensemble, params
                )
            )
            train_probs.append(
                _predict_with(
                    bundle, model_params, features, tokens, spec.train_keys, ensemble, params
                )
            )
            histories.append(
                _history(
                    result, held_out, "loco", spec.trial, f"ensemble:{source}", model=ENSEMBLE_MODEL
                )
            )
            members.append(source)
        if not members:
            raise ValueError(
                f"ensemble of {held_out!r}: no source cohort has both classes and enough samples"
            )
        # The threshold of the averaged model is fitted on its training rows (all sources).
        threshold = fit_threshold(
            _labels(tokens, spec.train_keys),
            np.mean(train_probs, axis=0),
            params.get("threshold_method", "youden"),
        )
        tables.append(
            prediction_frame(ENSEMBLE_MODEL, spec, y_test, np.mean(probs, axis=0), threshold)
        )
        logger.info("Ensemble of %s: %d members %s", held_out, len(members), members)
    predictions = pd.concat(tables, ignore_index=True) if tables else empty_predictions()
    history = pd.concat(histories, ignore_index=True) if histories else empty_history()
    return predictions, history


def _ensemble_sources(
    tokens: pd.DataFrame, spec: FoldSpec, ensemble: dict[str, Any], held_out: str
):
    """(source cohort, its labelled keys, labels) of every ensemble member: the source
    cohorts of the loco fold with ``min_samples`` labelled rows of both classes."""
    cohort = _cohort_of(tokens)
    for source in sorted({cohort[k] for k in spec.train_keys}):
        member_keys = [k for k in spec.train_keys if cohort[k] == source]
        y = _labels(tokens, member_keys)
        if len(member_keys) < int(ensemble.get("min_samples", 10)) or len(np.unique(y)) < 2:
            logger.info(
                "Ensemble of %s: skipping source %s (%d labelled, classes %s)",
                held_out,
                source,
                len(member_keys),
                np.unique(y),
            )
            continue
        yield source, member_keys, y


def loco_readouts(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    params: dict[str, Any],
    held_out: str,
    features: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Zero-shot (``loco``) with a linear readout fitted on the other cohorts' labelled rows,
    for IC2Bert and its ablations; the ensemble averages one readout per source cohort."""
    arms = _ReadoutArms(features, params)
    zero_shot, ensemble = params.get("zero_shot") or {}, params.get("ensemble") or {}
    spec = _specs(folds, "loco", held_out, None)[0]
    method = params.get("threshold_method", "youden")
    seed = int(params.get("seed", 0))
    y_train, y_test = _labels(tokens, spec.train_keys), _labels(tokens, spec.test_keys)
    tables, histories = [], []
    if zero_shot.get("enabled", True):
        for model in arms.features:
            readout, oof, train_auroc = arms.fit(model, spec.train_keys, y_train, seed)
            y_prob = arms.predict(model, readout, spec.test_keys)
            tables.append(
                prediction_frame(model, spec, y_test, y_prob, fit_threshold(y_train, oof, method))
            )
            histories.append(
                _readout_history(
                    readout, held_out, model, "loco", spec.trial, "zero_shot", train_auroc
                )
            )
    if ensemble.get("enabled", True):
        probs, train_probs, members = [], [], []
        for source, member_keys, y in _ensemble_sources(tokens, spec, ensemble, held_out):
            readout, _, train_auroc = arms.fit(MODEL, member_keys, y, seed)
            probs.append(arms.predict(MODEL, readout, spec.test_keys))
            train_probs.append(arms.predict(MODEL, readout, spec.train_keys))
            histories.append(
                _readout_history(
                    readout,
                    held_out,
                    ENSEMBLE_MODEL,
                    "loco",
                    spec.trial,
                    f"ensemble:{source}",
                    train_auroc,
                )
            )
            members.append(source)
        if not members:
            raise ValueError(
                f"ensemble of {held_out!r}: no source cohort has both classes and enough samples"
            )
        threshold = fit_threshold(y_train, np.mean(train_probs, axis=0), method)
        tables.append(
            prediction_frame(ENSEMBLE_MODEL, spec, y_test, np.mean(probs, axis=0), threshold)
        )
        logger.info("Ensemble of %s: %d members %s", held_out, len(members), members)
    predictions = pd.concat(tables, ignore_index=True) if tables else empty_predictions()
    history = pd.concat(histories, ignore_index=True) if histories else empty_history()
    return predictions, history
