"""The transfer protocol of IC2Bert (the paper's LODOCV) for one held-out cohort h.

Every transfer trial (``transfer`` K-fold and, where configured, ``transfer_paper`` 80/20
splits) trains on the rows ``transfer_rows`` names for its protocol
(``fold_inputs.transfer_train_keys``: in conf/base ``transfer`` trains on the labelled sources
plus h's ``target_train``, the baselines' rows, and ``transfer_paper`` on h's ``target_train``
only, the paper's) and scores ``target_test`` once, after the model was chosen on training rows:
``transfer_finetuned`` fine-tunes h's pretrained model per trial (the paper's pooled head),
``transfer_readouts`` fits each arm's linear readout per trial. Both return the registered
trial's pick (``TransferPick``, chosen by ``keep_registered`` on an inner score, never a test
score), which ``registration`` packages into the model bundle.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple

import pandas as pd

from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.evaluation.protocols import FoldSpec
from icb_kedro.models.ic2bert.finetune_fits import fit_full, inner_val_loss, score_keys
from icb_kedro.models.ic2bert.finetune_history import auroc_or_nan, history_frame, readout_history
from icb_kedro.models.ic2bert.fold_inputs import (
    MODEL,
    _transfer_protocols,
    _transfer_specs,
    cohort_of,
    cohort_size,
    labels_of,
    transfer_train_keys,
)
from icb_kedro.models.ic2bert.readout_arms import _ReadoutArms
from icb_kedro.schema import prediction_frame

if TYPE_CHECKING:
    from icb_kedro.pipelines.ic2bert_finetune.config import FinetuneParams

logger = logging.getLogger(__name__)


class TransferPick(NamedTuple):
    """A transfer trial that may be registered: its selection score (higher is better), fold,
    fitted model (a ``FinetuneResult`` or a ``LinearReadout``), threshold and training rows
    (sample keys: sources and / or h's own ``target_train``, ``transfer_train_keys``)."""

    score: float
    spec: FoldSpec
    model: Any
    threshold: float
    train_keys: tuple[str, ...]


def keep_registered(
    best: TransferPick | None, candidate: TransferPick, params: FinetuneParams
) -> TransferPick | None:
    """The registered trial so far: the best-scoring split of the first transfer protocol (one
    protocol per registered model); a tie keeps the earlier split."""
    if candidate.spec.protocol == _transfer_protocols(params)[0] and (
        best is None or candidate.score > best.score
    ):
        return candidate
    return best


def _finetune_trial(bundle, tokens, cohort, spec: FoldSpec, params: FinetuneParams, held_out):
    """Fine-tune h's pretrained model on the trial's training rows (``transfer_train_keys``;
    the size tier is h's), then score its test rows once: (prediction table, history,
    ``TransferPick``)."""
    train_keys = transfer_train_keys(spec, cohort, held_out, params)
    result, threshold = fit_full(
        bundle,
        bundle.params,
        train_keys,
        tokens,
        params,
        spec.seed,
        cohort_size(tokens, held_out),
    )
    # Test rows enter only now, after the epoch was chosen on the inner validation split.
    y_prob = score_keys(bundle, result.params, spec.test_keys, tokens, params.eval_batch_size)
    table = prediction_frame(
        MODEL,
        spec,
        labels_of(tokens, spec.test_keys),
        y_prob,
        threshold,
        n_train=len(train_keys),
    )
    y_train = labels_of(tokens, train_keys)
    train_auroc = auroc_or_nan(
        y_train,
        score_keys(bundle, result.params, train_keys, tokens, params.eval_batch_size),
    )
    history = history_frame(result, held_out, spec.protocol, spec.trial, train_auroc=train_auroc)
    score = -inner_val_loss(result)  # the registered trial: lowest inner-validation loss
    logger.info(
        "IC2Bert transfer %s trial %d: best epoch %d (%s %.3f)",
        held_out,
        spec.trial,
        result.best_epoch,
        result.selection,
        result.score,
    )
    return table, history, TransferPick(score, spec, result, threshold, tuple(train_keys))


def transfer_finetuned(
    bundle, tokens: pd.DataFrame, folds: pd.DataFrame, params: FinetuneParams, held_out: str
) -> tuple[pd.DataFrame, pd.DataFrame, TransferPick]:
    """Every transfer trial fine-tuned and scored: (predictions, histories, registered pick).

    The registered trial has the lowest inner-validation loss (``inner_val_loss``) among the
    splits of the first transfer protocol.
    """
    cohort = cohort_of(tokens)
    tables, histories, best = [], [], None
    for spec in _transfer_specs(folds, held_out, params):
        table, history, pick = _finetune_trial(bundle, tokens, cohort, spec, params, held_out)
        tables.append(table)
        histories.append(history)
        best = keep_registered(best, pick, params)
    if best is None:
        raise ValueError(f"no transfer folds for held-out cohort {held_out!r}")
    return pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True), best


def transfer_readouts(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    params: FinetuneParams,
    held_out: str,
    features: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame, TransferPick]:
    """Transfer with a linear readout: per trial, each arm's readout is fitted on the trial's
    training rows (``transfer_train_keys``; C by stratified CV on them) and scores target_test
    once.

    Returns (predictions, histories, registered pick): IC2Bert's readout with the best inner-CV
    AUROC among the splits of the first transfer protocol.
    """
    arms = _ReadoutArms(features, params)
    cohort = cohort_of(tokens)
    method = params.threshold_method
    tables, histories, best = [], [], None
    for spec in _transfer_specs(folds, held_out, params):
        train_keys = transfer_train_keys(spec, cohort, held_out, params)
        y_train, y_test = labels_of(tokens, train_keys), labels_of(tokens, spec.test_keys)
        for model in arms.features:
            readout, oof, train_auroc = arms.fit(model, train_keys, y_train, spec.seed)
            threshold = fit_threshold(y_train, oof, method)  # out-of-fold, training rows only
            y_prob = arms.predict(model, readout, spec.test_keys)
            tables.append(
                prediction_frame(model, spec, y_test, y_prob, threshold, n_train=len(train_keys))
            )
            histories.append(
                readout_history(
                    readout, held_out, model, spec.protocol, spec.trial, "", train_auroc
                )
            )
            if model == MODEL:  # the registered model is IC2Bert's own readout
                pick = TransferPick(readout.cv_auroc, spec, readout, threshold, tuple(train_keys))
                best = keep_registered(best, pick, params)
        logger.info(
            "IC2Bert transfer %s trial %d: readout %s fitted on %d rows",
            held_out,
            spec.trial,
            arms.kind,
            len(train_keys),
        )
    if best is None:
        raise ValueError(f"no transfer folds for held-out cohort {held_out!r}")
    return pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True), best
