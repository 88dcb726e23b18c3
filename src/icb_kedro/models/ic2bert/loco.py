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
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.evaluation.protocols import FoldSpec
from icb_kedro.models.ic2bert.finetune_fits import predict_with, train_source_model
from icb_kedro.models.ic2bert.finetune_history import empty_history, history_frame, readout_history
from icb_kedro.models.ic2bert.fold_inputs import (
    ENSEMBLE_MODEL,
    MODEL,
    cohort_of,
    fold_specs,
    labels_of,
)
from icb_kedro.models.ic2bert.readout_arms import _ReadoutArms
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.schema import empty_predictions, prediction_frame

if TYPE_CHECKING:
    from icb_kedro.pipelines.ic2bert_finetune.config import Ensemble, FinetuneParams

logger = logging.getLogger(__name__)


def loco_finetuned(
    bundle, tokens: pd.DataFrame, folds: pd.DataFrame, params: FinetuneParams, held_out: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``loco`` predictions of the zero-shot head (model ``ic2bert``) and the
    per-source ensemble."""
    from icb_kedro.models.ic2bert.predict import pooled_features

    zero_shot, ensemble = params.zero_shot, params.ensemble
    specs = fold_specs(folds, "loco", held_out, None)
    spec = specs[0]
    keys = sorted(set(spec.train_keys) | set(spec.test_keys))
    pooled = pooled_features(
        bundle.config,
        bundle.params,
        token_matrix(tokens, keys),
        params.eval_batch_size,
    )
    features = dict(zip(keys, pooled, strict=True))  # frozen pretrained features (label-free)
    seed = params.seed
    tables, histories = [], []
    y_test = labels_of(tokens, spec.test_keys)
    if zero_shot.enabled:
        model_params, threshold, result = train_source_model(
            bundle, features, tokens, spec.train_keys, params, zero_shot, seed
        )
        y_prob = predict_with(
            bundle, model_params, features, tokens, spec.test_keys, zero_shot, params
        )
        tables.append(prediction_frame(MODEL, spec, y_test, y_prob, threshold))
        histories.append(history_frame(result, held_out, "loco", spec.trial, "zero_shot"))
    if ensemble.enabled:
        members, probs, train_probs = [], [], []
        for source, member_keys, y in _ensemble_sources(tokens, spec, ensemble, held_out):
            model_params, _, result = train_source_model(
                bundle, features, tokens, member_keys, params, ensemble, seed
            )
            probs.append(
                predict_with(
                    bundle, model_params, features, tokens, spec.test_keys, ensemble, params
                )
            )
            train_probs.append(
                predict_with(
                    bundle, model_params, features, tokens, spec.train_keys, ensemble, params
                )
            )
            histories.append(
                history_frame(
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
            labels_of(tokens, spec.train_keys),
            np.mean(train_probs, axis=0),
            params.threshold_method,
        )
        tables.append(
            prediction_frame(ENSEMBLE_MODEL, spec, y_test, np.mean(probs, axis=0), threshold)
        )
        logger.info("Ensemble of %s: %d members %s", held_out, len(members), members)
    predictions = pd.concat(tables, ignore_index=True) if tables else empty_predictions()
    history = pd.concat(histories, ignore_index=True) if histories else empty_history()
    return predictions, history


def _ensemble_sources(tokens: pd.DataFrame, spec: FoldSpec, ensemble: Ensemble, held_out: str):
    """(source cohort, its labelled keys, labels) of every ensemble member: the source
    cohorts of the loco fold with ``min_samples`` labelled rows of both classes."""
    cohort = cohort_of(tokens)
    for source in sorted({cohort[k] for k in spec.train_keys}):
        member_keys = [k for k in spec.train_keys if cohort[k] == source]
        y = labels_of(tokens, member_keys)
        if len(member_keys) < ensemble.min_samples or len(np.unique(y)) < 2:
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
    params: FinetuneParams,
    held_out: str,
    features: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Zero-shot (``loco``) with a linear readout fitted on the other cohorts' labelled rows,
    for IC2Bert and its ablations; the ensemble averages one readout per source cohort."""
    arms = _ReadoutArms(features, params)
    zero_shot, ensemble = params.zero_shot, params.ensemble
    spec = fold_specs(folds, "loco", held_out, None)[0]
    method = params.threshold_method
    seed = params.seed
    y_train, y_test = labels_of(tokens, spec.train_keys), labels_of(tokens, spec.test_keys)
    tables, histories = [], []
    if zero_shot.enabled:
        for model in arms.features:
            readout, oof, train_auroc = arms.fit(model, spec.train_keys, y_train, seed)
            y_prob = arms.predict(model, readout, spec.test_keys)
            tables.append(
                prediction_frame(model, spec, y_test, y_prob, fit_threshold(y_train, oof, method))
            )
            histories.append(
                readout_history(
                    readout, held_out, model, "loco", spec.trial, "zero_shot", train_auroc
                )
            )
    if ensemble.enabled:
        probs, train_probs, members = [], [], []
        for source, member_keys, y in _ensemble_sources(tokens, spec, ensemble, held_out):
            readout, _, train_auroc = arms.fit(MODEL, member_keys, y, seed)
            probs.append(arms.predict(MODEL, readout, spec.test_keys))
            train_probs.append(arms.predict(MODEL, readout, spec.train_keys))
            histories.append(
                readout_history(
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
