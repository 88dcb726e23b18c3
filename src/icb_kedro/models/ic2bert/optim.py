"""The optimiser of every IC2Bert training (spec section 3, item 11) and its training state.

One optimiser recipe, the paper's (global-norm clipping, AdamW, linear warm-up then cosine
decay), built in one place (``build_optimizer``) for pretraining, fine-tuning and head
training; tiers only change its hyper-parameters. The original's constant-lr Adam
(pretraining) and x10-scaled warm-up + exponential decay (fine-tuning) are not reproduced.
Hyper-parameters that change between runs (learning rate, weight decay, clip norm) are traced
inputs of the jitted updates (``StepHyper``, written into the optimiser state by
``_with_hyperparams``), so a whole LODOCV run compiles each update once per (model config,
batch size) instead of once per fine-tuning. Also ``TrainingState`` (params, optimiser state,
JAX key, step) and ``learning_rate_schedule``.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from icb_kedro.models.ic2bert.model import CLASSIFICATION_HEAD
from icb_kedro.models.ic2bert.train_config import OptimizerConfig

TRAINABLE = ("all", "head")


class TrainingState(NamedTuple):
    params: hk.Params
    opt_state: optax.OptState
    rng: jax.Array
    step: jax.Array  # int32 scalar


DECAYED_PARAMETERS = ("w", "embeddings")  # Linear weights and embedding tables


def _decay_mask(params: hk.Params) -> Any:
    """AdamW decays weight matrices and embeddings, not biases or LayerNorm scale/offset
    (by name: with scanned layers every block parameter has an extra leading axis)."""
    return {
        module: {name: name in DECAYED_PARAMETERS for name in leaves}
        for module, leaves in params.items()
    }


def _trainable_labels(params: hk.Params, trainable: str) -> Any:
    def label(module: str) -> str:
        return "train" if trainable == "all" or module == CLASSIFICATION_HEAD else "freeze"

    return {module: {name: label(module) for name in leaves} for module, leaves in params.items()}


def build_optimizer(
    trainable: str = "all", encoder_lr_scale: float = 1.0
) -> optax.GradientTransformation:
    """THE optax chain: clip_by_global_norm -> AdamW, hyper-parameters injected per step.

    ``trainable="head"`` freezes everything but the classification head (zero updates).
    ``encoder_lr_scale`` < 1 scales every update but the head's (a smaller encoder learning
    rate for fine-tuning a pretrained encoder; AdamW's update is linear in the rate).
    """
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable must be one of {TRAINABLE}, got {trainable!r}")
    chain = optax.chain(
        optax.inject_hyperparams(optax.clip_by_global_norm)(max_norm=1.0),
        # mask is static: inject_hyperparams would otherwise call it as a schedule.
        optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
            learning_rate=0.0, weight_decay=0.0, mask=_decay_mask
        ),
    )
    if trainable == "all" and encoder_lr_scale != 1.0:
        encoder = optax.masked(
            optax.scale(encoder_lr_scale),
            lambda p: {m: {n: m != CLASSIFICATION_HEAD for n in leaves} for m, leaves in p.items()},
        )
        return optax.chain(chain, encoder)
    if trainable == "all":
        return chain
    return optax.multi_transform(
        {"train": chain, "freeze": optax.set_to_zero()},
        functools.partial(_trainable_labels, trainable=trainable),
    )


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    """Linear warm-up to ``peak_lr`` then cosine decay over the remaining steps."""
    steps = (
        config.warmup_steps
        if config.warmup_fraction is None
        else int(round(config.warmup_fraction * total_steps))
    )
    warmup = min(steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.peak_lr,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=config.peak_lr * config.end_lr_fraction,
    )


def _with_hyperparams(opt_state: Any, learning_rate, weight_decay, clip_norm) -> Any:
    """Write the step's hyper-parameters into every injected-hyperparameter state."""

    def is_injected(node) -> bool:
        # optax >= 0.2 returns InjectStatefulHyperparamsState (not a subclass of the public
        # InjectHyperparamsState), so match on the field instead of the class.
        return hasattr(node, "hyperparams") and hasattr(node, "_replace")

    def update(node):
        if is_injected(node):
            hp = dict(node.hyperparams)
            if "max_norm" in hp:
                hp["max_norm"] = jnp.asarray(clip_norm, jnp.float32)
            if "learning_rate" in hp:
                hp["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
                hp["weight_decay"] = jnp.asarray(weight_decay, jnp.float32)
            return node._replace(hyperparams=hp)
        return node

    return jax.tree_util.tree_map(update, opt_state, is_leaf=is_injected)


class StepHyper(NamedTuple):
    """Per-step scalars passed into jitted updates (traced, so no recompilation)."""

    learning_rate: float
    weight_decay: float
    clip_norm: float


def _hyper(config: OptimizerConfig, schedule: optax.Schedule, step: int) -> StepHyper:
    return StepHyper(float(schedule(step)), config.weight_decay, config.clip_norm)
