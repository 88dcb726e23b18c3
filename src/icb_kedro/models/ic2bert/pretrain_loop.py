"""IC2Bert pretraining: masked expression modelling (model_spec.md 2.4).

``pretrain`` runs the epochs (random gene subsets per step when configured, gradient
accumulation over micro-batches, resumable checkpoints) and keeps the epoch with the best
masked-token accuracy on fixed validation masks (``mlm_validation_masks``, scored by
``evaluate_mlm``); ``_mlm_functions`` holds its jitted update, evaluation and initialisation,
compiled once per (model config, masking, micro-batch).
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from icb_kedro.models.ic2bert.batching import (
    accumulated_value_and_grad,
    iterate_batches,
    steps_per_epoch,
)
from icb_kedro.models.ic2bert.masking import mask_tokens
from icb_kedro.models.ic2bert.model import IC2BertConfig, build_model
from icb_kedro.models.ic2bert.optim import (
    StepHyper,
    TrainingState,
    _hyper,
    _with_hyperparams,
    build_optimizer,
    learning_rate_schedule,
)
from icb_kedro.models.ic2bert.train_config import MaskingConfig, PretrainConfig
from icb_kedro.models.ic2bert.weights import host_copy

logger = logging.getLogger(__name__)


class PretrainResult(NamedTuple):
    params: hk.Params  # numpy pytree of the checkpoint with the best validation MLM accuracy
    history: pd.DataFrame  # one row per epoch
    best_epoch: int


@functools.cache
def _mlm_functions(model_config: IC2BertConfig, masking: MaskingConfig, micro_batch: int = 0):
    """Jitted (update, evaluate, init) for masked expression modelling, one compile per config."""
    model = build_model(model_config)
    optimizer = build_optimizer("all")
    n_bins = model_config.n_bins

    def masked_loss_sums(params, dropout_key, inputs, targets, weights, gene_ids):
        out = model.apply(params, dropout_key, inputs, True, False, gene_ids)
        ce = optax.softmax_cross_entropy_with_integer_labels(out.mlm_logits, targets)  # [B, L]
        correct = (jnp.argmax(out.mlm_logits, -1) == targets).astype(jnp.float32)
        return (ce * weights).sum(), ((correct * weights).sum(), weights.sum())

    def update(state: TrainingState, tokens, row_weights, hyper: StepHyper, gene_ids):
        rng, mask_key, dropout_key = jax.random.split(state.rng, 3)
        batch = mask_tokens(
            mask_key, tokens, n_bins, masking.select_prob, masking.mask_prob, masking.random_prob
        )
        weights = batch.selected * row_weights[:, None]  # loss on selected positions only

        def sums(params, key, inputs, targets, weights):
            return masked_loss_sums(params, key, inputs, targets, weights, gene_ids)

        (ce_sum, (correct_sum, weight_sum)), grad_sum = accumulated_value_and_grad(
            sums, state.params, dropout_key, (batch.inputs, batch.targets, weights), micro_batch
        )
        denom = jnp.maximum(weight_sum, 1.0)  # mean over the selected positions of the whole batch
        loss, acc = ce_sum / denom, correct_sum / denom
        grads = jax.tree_util.tree_map(lambda g: g / denom, grad_sum)
        opt_state = _with_hyperparams(state.opt_state, *hyper)
        updates, opt_state = optimizer.update(grads, opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainingState(params, opt_state, rng, state.step + 1), {
            "loss": loss,
            "accuracy": acc,
        }

    def evaluate(params, inputs, targets, weights, gene_ids):
        out = model.apply(params, None, inputs, False, False, gene_ids)
        ce = optax.softmax_cross_entropy_with_integer_labels(out.mlm_logits, targets)
        correct = (jnp.argmax(out.mlm_logits, -1) == targets).astype(jnp.float32)
        return (ce * weights).sum(), (correct * weights).sum(), weights.sum()

    def init(seed: int, example_tokens) -> TrainingState:
        key = jax.random.PRNGKey(seed)
        init_key, state_key = jax.random.split(key)
        params = model.init(init_key, example_tokens, True)
        return TrainingState(params, optimizer.init(params), state_key, jnp.zeros((), jnp.int32))

    return (
        jax.jit(update, donate_argnums=0),
        jax.jit(evaluate),
        jax.jit(init, static_argnums=0),
        optimizer,
    )


def mlm_validation_masks(
    tokens: np.ndarray, n_bins: int, seed: int, masking: MaskingConfig = MaskingConfig()
):
    """Fixed masks of the MLM validation rows (the same for every epoch and resume)."""
    batch = mask_tokens(
        jax.random.PRNGKey(seed),
        jnp.asarray(tokens, jnp.int32),
        n_bins,
        masking.select_prob,
        masking.mask_prob,
        masking.random_prob,
    )
    return np.asarray(batch.inputs), np.asarray(batch.targets), np.asarray(batch.selected)


def evaluate_mlm(
    model_config: IC2BertConfig,
    params,
    val_masks,
    batch_size: int,
    masking: MaskingConfig = MaskingConfig(),
    context: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Masked-token loss and accuracy on fixed validation masks.

    ``context`` > 0 scores the panel in one seeded partition of chunks of about that many
    genes (``predict.context_chunks``): the context length a ``gene_subset`` model was trained
    on and is read in, and attention costs ~L^2 (at 1,719 genes a whole-panel validation pass
    cost more than the epoch's training steps)."""
    from icb_kedro.models.ic2bert.predict import context_chunks

    _, evaluate, _, _ = _mlm_functions(model_config, masking)
    inputs, targets, selected = val_masks
    total_ce = total_correct = total_weight = 0.0
    for chunk in context_chunks(inputs.shape[1], context, seed):
        ids = jnp.asarray(chunk, jnp.int32)
        for idx, row_w in iterate_batches(len(inputs), batch_size, None):
            rows = np.ix_(idx, chunk)
            ce, correct, weight = evaluate(
                params, inputs[rows], targets[rows], selected[rows] * row_w[:, None], ids
            )
            total_ce += float(ce)
            total_correct += float(correct)
            total_weight += float(weight)
    total_weight = max(total_weight, 1.0)
    return {"val_loss": total_ce / total_weight, "val_accuracy": total_correct / total_weight}


def pretrain(
    model_config: IC2BertConfig,
    train_tokens: np.ndarray,
    val_tokens: np.ndarray,
    config: PretrainConfig,
    seed: int,
    checkpointer: Any | None = None,
    fingerprint: str = "",
) -> PretrainResult:
    """Masked expression modelling; keeps the epoch with the best validation MLM accuracy.

    ``checkpointer`` (``checkpoint.PretrainCheckpointer``) saves a resumable state every
    ``config.checkpoint_every`` epochs; a later call with the same ``fingerprint`` resumes
    from the latest one and produces the same numbers as an uninterrupted run (epoch
    shuffles come from ``(seed, epoch)``, the JAX key lives in the saved state).
    """
    train_tokens = np.asarray(train_tokens, np.int32)
    if train_tokens.ndim != 2 or train_tokens.shape[1] != model_config.n_genes:
        raise ValueError(
            f"train tokens must be [n, {model_config.n_genes}], got {train_tokens.shape}"
        )
    if len(val_tokens) == 0:
        raise ValueError("pretrain: the MLM validation split is empty")
    data = train_tokens != model_config.missing_id
    if train_tokens.min() < 0 or train_tokens[data].max(initial=0) >= model_config.n_bins:
        raise ValueError(
            f"pretrain: tokens must be data ids in [0, {model_config.n_bins - 1}] or [MISSING] "
            f"({model_config.missing_id}); the mask id is reserved"
        )
    update, _, init, _ = _mlm_functions(model_config, config.masking, config.micro_batch_size)
    val_masks = mlm_validation_masks(val_tokens, model_config.n_bins, seed, config.masking)
    total_steps = config.epochs * steps_per_epoch(len(train_tokens), config.batch_size)
    schedule = learning_rate_schedule(config.optimizer, total_steps)

    state = init(seed, jnp.asarray(train_tokens[: config.batch_size]))
    history: list[dict[str, float]] = []
    best = {"params": host_copy(state.params), "accuracy": -1.0, "epoch": 0}
    start_epoch = 1
    if checkpointer is not None:
        restored = checkpointer.restore_latest(state, best["params"], fingerprint)
        if restored is not None:
            state, best, history, done = restored
            start_epoch = done + 1
            logger.info(
                "Resuming pretraining at epoch %d of %d from %s",
                start_epoch,
                config.epochs,
                checkpointer.directory,
            )

    step = int(state.step)
    from tqdm.auto import tqdm

    epochs = tqdm(
        range(start_epoch, config.epochs + 1),
        initial=start_epoch - 1,
        total=config.epochs,
        desc="IC2Bert pretraining",
        unit="epoch",
        leave=False,
    )
    for epoch in epochs:
        started = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        losses, accs, weights = [], [], []
        n_genes = model_config.n_genes
        subset = config.gene_subset if 0 < config.gene_subset < n_genes else n_genes
        for idx, row_w in iterate_batches(len(train_tokens), config.batch_size, rng):
            hyper = _hyper(config.optimizer, schedule, step)
            gene_ids = (
                np.sort(rng.choice(n_genes, subset, replace=False))
                if subset < n_genes
                else np.arange(n_genes)
            )
            state, metrics = update(
                state, train_tokens[idx][:, gene_ids], row_w, hyper, gene_ids.astype(np.int32)
            )
            step += 1  # host copy of state.step: no device sync per step
            losses.append(metrics["loss"])
            accs.append(metrics["accuracy"])
            weights.append(row_w.sum())
        w = np.asarray(weights)
        val = evaluate_mlm(
            model_config,
            state.params,
            val_masks,
            config.eval_batch_size,
            config.masking,
            config.gene_subset,
            seed,
        )
        row = {
            "epoch": epoch,
            "train_loss": float(np.average(np.asarray(losses), weights=w)),
            "train_accuracy": float(np.average(np.asarray(accs), weights=w)),
            **val,
            "learning_rate": float(schedule(step)),
            "seconds": time.perf_counter() - started,
        }
        history.append(row)
        logger.info(
            "pretrain epoch %d: loss %.4f, val MLM accuracy %.4f",
            epoch,
            row["train_loss"],
            row["val_accuracy"],
        )
        if val["val_accuracy"] > best["accuracy"]:
            best = {
                "params": host_copy(state.params),
                "accuracy": val["val_accuracy"],
                "epoch": epoch,
            }
        if (
            checkpointer is not None
            and config.checkpoint_every
            and (epoch % config.checkpoint_every == 0 or epoch == config.epochs)
        ):
            checkpointer.save(epoch, state, best, history, fingerprint)
    return PretrainResult(best["params"], pd.DataFrame(history), int(best["epoch"]))
