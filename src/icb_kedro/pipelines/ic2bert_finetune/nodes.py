"""Nodes of the ic2bert_finetune pipeline: thin wiring around ``icb_kedro.models.ic2bert``.

Protocols written to ``predictions_ic2bert`` (columns ``schema.PREDICTION_COLUMNS``), all on
the folds of ``lodocv_folds`` read through ``icb_kedro.evaluation.protocols``:

* ``transfer`` / model ``ic2bert`` - the paper's LODOCV: h's pretrained model (other cohorts,
  label-free) fine-tuned on h's ``target_train`` rows, scored on ``target_test``. The
  evaluation layer's transfer fold trains on ``source + target_train``; IC2Bert uses the
  source samples label-free (pretraining) and only h's rows for supervised fine-tuning, as
  the paper does. ``n_train`` = number of target rows fine-tuned on.
* ``loco`` / model ``ic2bert`` - zero-shot: a classification head trained on the other
  cohorts' labels only (spec item 13: the original applies an untrained head), on frozen
  pretrained features by default (``zero_shot.trainable: head``) or fine-tuning everything
  (``all``); scored on every labelled sample of h.
* ``loco`` / model ``ic2bert_ensemble`` - our reading of the paper's ensemble: the results
  text's "models fine-tuned on each pretraining dataset", i.e. one model per source cohort
  (fine-tuned from h's pretrained weights on that cohort's labels), probabilities averaged.
  It uses no label of h, hence ``loco``. (The methods-text reading, per-trial models of h,
  cannot be scored on h's test rows without leakage: each trial's test rows are another
  trial's training rows.)
* ``within`` / model ``ic2bert`` - the same architecture and tokens trained from random
  initialisation (no pretraining) on ``target_train`` only: what pretraining adds.

Every fine-tuning picks its epoch on an inner validation split of its training rows (spec
item 8); test rows are tokenized and labelled only after that, scored once.

The protocols live in ``icb_kedro.models.ic2bert`` (``transfer``, ``within``, ``loco``,
``sample_size``, ``registration``, ``learning_check``, ``figures``); a node picks the
readout variant, resolves its optional inputs and calls them. JAX is imported lazily there.
Each node parses ``params:ic2bert_finetune`` into ``config.FinetuneParams`` (a typo or a bad
value fails here, and ``hooks.ParametersCheckHook`` already at run start) and hands the typed
block to those modules.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from icb_kedro.models.ic2bert import figures
from icb_kedro.models.ic2bert import learning_check as checks
from icb_kedro.models.ic2bert import sample_size as sizes
from icb_kedro.models.ic2bert.finetune_history import empty_history
from icb_kedro.models.ic2bert.fold_inputs import fold_bundle
from icb_kedro.models.ic2bert.loco import loco_finetuned, loco_readouts
from icb_kedro.models.ic2bert.readout_arms import readout_features_by_arm, readout_of
from icb_kedro.models.ic2bert.registration import (
    finetuned_bundle,
    readout_bundle,
    registry_record,
)
from icb_kedro.models.ic2bert.transfer import transfer_finetuned, transfer_readouts
from icb_kedro.models.ic2bert.within import train_within
from icb_kedro.schema import empty_predictions

from .config import Ablations, FinetuneParams

WHERE = "params:ic2bert_finetune"


def _parsed(params: dict[str, Any] | FinetuneParams) -> FinetuneParams:
    return FinetuneParams.of(params, WHERE)


# --------------------------------------------------------------------------- per fold
def readout_features_table(
    tokens: pd.DataFrame, pretrained: dict[str, Any], params: dict[str, Any], held_out: str
) -> pd.DataFrame:
    """Frozen readout features of every sample, per arm (IC2Bert and its ablations), shared by
    the transfer, zero-shot and sample-size nodes; empty for the ``pooled_head`` readout
    (``models.ic2bert.readout_arms.readout_features_by_arm``)."""
    return readout_features_by_arm(tokens, pretrained, _parsed(params), held_out)


def finetune_transfer(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
    model_input: str = "expression_standardized",
    features: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The paper's transfer protocol for one held-out cohort, every trial.

    Returns predictions (``transfer``), fine-tuning histories, and the model bundle of the
    trial with the best inner-validation score (the one registered for this cohort; the
    choice never looks at test rows). ``model_input`` (``params:tokenization.input``, the
    table the model was trained on; typed and checked with its block at run start) tells the
    bundle how new data must be scaled (``registration.input_transform``).
    """
    config = _parsed(params)
    bundle = fold_bundle(pretrained, held_out)
    kind = readout_of(config)
    if kind == "pooled_head":
        predictions, history, pick = transfer_finetuned(bundle, tokens, folds, config, held_out)
        return predictions, history, finetuned_bundle(bundle, pick, tokens, held_out, model_input)
    if features is None:
        features = readout_features_by_arm(tokens, pretrained, config, held_out)
    predictions, history, pick = transfer_readouts(tokens, folds, config, held_out, features)
    chosen = readout_bundle(bundle, pick, kind, tokens, held_out, model_input)
    return predictions, history, chosen


def finetune_within(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``within``: the same model trained from random initialisation on target_train only.

    Only the architecture, tokenizer and token table of the fold are reused (both label-free
    and fitted without h); the pretrained weights are not.
    """
    config = _parsed(params)
    if not config.within.enabled:
        return empty_predictions(), empty_history()
    bundle = fold_bundle(pretrained, held_out)
    return train_within(bundle, tokens, folds, config, held_out, config.within_repeats())


def zero_shot_and_ensemble(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
    features: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``loco`` predictions of the zero-shot head (model ``ic2bert``) and the
    per-source ensemble."""
    config = _parsed(params)
    bundle = fold_bundle(pretrained, held_out)
    if readout_of(config) == "pooled_head":
        return loco_finetuned(bundle, tokens, folds, config, held_out)
    if features is None:
        features = readout_features_by_arm(tokens, pretrained, config, held_out)
    return loco_readouts(tokens, folds, config, held_out, features)


def sample_size_analysis(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Test predictions after fine-tuning on balanced subsets of n_train target rows.

    For the configured cohorts only (others return an empty table): from the transfer fold of
    ``sample_size.trial``, draw ``n/2`` responders and ``n/2`` non-responders of target_train
    (``repeats`` draws per n, n up to the largest balanced size) and score target_test;
    n_train = 0 is the zero-shot head (other cohorts' labels only).
    """
    config = _parsed(params)
    if held_out not in config.sample_size.cohorts:
        return sizes.empty_sample_size_table()
    bundle = fold_bundle(pretrained, held_out)
    design = sizes.sample_size_design(tokens, folds, config.sample_size, held_out)
    if readout_of(config) == "pooled_head":
        return sizes.sample_size_finetuned(bundle, tokens, config, held_out, design)
    if features is None:  # IC2Bert's own arm is all this analysis reads
        ablations = Ablations(random_init=False, token_lr=False)
        features = readout_features_by_arm(
            tokens, pretrained, config.model_copy(update={"ablations": ablations}), held_out
        )
    return sizes.sample_size_readouts(features, tokens, config, held_out, design)


def register_best_model(
    best_model: dict[str, Any], params: dict[str, Any], held_out: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Hand the chosen bundle to the registry dataset, plus a one-row record of it.

    The record is what downstream nodes (``predict``) depend on, so they run after the
    model is logged (Kedro saves all outputs of a node before running its dependents).
    """
    return best_model, registry_record(best_model["metadata"], held_out)


# --------------------------------------------------------------------------- cross-fold
def combine_predictions(*tables: pd.DataFrame) -> pd.DataFrame:
    """All folds' predictions, validated by the evaluation layer (``predictions_ic2bert``)."""
    from icb_kedro.evaluation.summary import validate_predictions

    non_empty = [t for t in tables if len(t)]
    if not non_empty:
        raise ValueError("IC2Bert produced no predictions (every protocol disabled?)")
    return validate_predictions(pd.concat(non_empty, ignore_index=True))


def combine_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    non_empty = [t for t in tables if len(t)]
    return pd.concat(non_empty, ignore_index=True) if non_empty else tables[0].iloc[0:0]


def compute_fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, protocol, cohort, trial): becomes one nested MLflow
    run (project hook)."""
    from icb_kedro.evaluation.summary import fold_metrics

    return fold_metrics(predictions)


def summarize_cohorts(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    from icb_kedro.evaluation.summary import cohort_summary

    evaluation = _parsed(params).evaluation
    return cohort_summary(predictions, n_boot=evaluation.n_boot, seed=evaluation.seed)


def learning_check(predictions: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Does each fitted model learn? Per (model, protocol, cohort, repeat): fit on training
    rows, held-out AUROC and spread of held-out probabilities
    (``models.ic2bert.learning_check.learning_check_table``)."""
    return checks.learning_check_table(predictions, history)


def summarize_learning_check(check: pd.DataFrame) -> pd.DataFrame:
    """Mean over cohorts (of per-cohort means over repeats) per model and protocol."""
    return checks.learning_check_summary(check)


def summarize_sample_size(sample_size: pd.DataFrame) -> pd.DataFrame:
    """Test AUROC per (cohort, n_train, repeat)."""
    return sizes.sample_size_auroc(sample_size)


def plot_auroc(fold_metrics: pd.DataFrame):
    """Test AUROC per held-out cohort and protocol (mean +/- sd over trials)."""
    return figures.auroc_figure(fold_metrics)


def plot_sample_size(summary: pd.DataFrame):
    """Test AUROC against the number of balanced fine-tuning samples (0 = zero-shot)."""
    return figures.sample_size_figure(summary)
