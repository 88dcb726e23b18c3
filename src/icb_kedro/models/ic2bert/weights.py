"""IC2Bert parameter pytrees: random initialisation, numpy host copies and the classification
head.

``init_params`` (random initial parameters, one jit per model config), ``host_copy`` (a numpy
copy safe to keep while device buffers are donated), ``head_logits`` (the classification head
applied to pooled features: the one place that computes it by hand, for head-only training,
its jitted prediction and ``predict.head_proba``) and ``with_prevalence_head`` (a copy whose
head restarts at zero weights and bias logit(prevalence)).
"""

from __future__ import annotations

import functools
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from icb_kedro.models.ic2bert.model import CLASSIFICATION_HEAD, IC2BertConfig, build_model


def host_copy(tree: Any) -> Any:
    """A numpy copy of a pytree (safe to keep while device buffers are donated)."""
    return jax.tree_util.tree_map(lambda x: np.array(x, copy=True), tree)


@functools.cache
def _jitted_init(model_config: IC2BertConfig):
    model = build_model(model_config)
    return jax.jit(
        lambda key: model.init(key, jnp.zeros((1, model_config.n_genes), jnp.int32), True)
    )


def init_params(model_config: IC2BertConfig, seed: int) -> hk.Params:
    """Randomly initialised parameters (numpy pytree), e.g. for training from scratch."""
    return host_copy(_jitted_init(model_config)(jax.random.PRNGKey(seed)))


def head_logits(params: hk.Params, features, dtype=None):
    """Logits [n] of the classification head on pooled features [n, D]: ``features @ w + b``.

    Works on JAX arrays inside jitted code (head-only training and its prediction) and on
    numpy arrays; ``dtype`` (e.g. ``np.float64``) first converts features and head to numpy
    arrays of that type (``predict.head_proba``).
    """
    head = params[CLASSIFICATION_HEAD]
    w, b = head["w"], head["b"]
    if dtype is not None:
        features, w, b = (np.asarray(a, dtype) for a in (features, w, b))
    return (features @ w + b)[:, 0]


def with_prevalence_head(params: hk.Params, labels: np.ndarray) -> hk.Params:
    """A copy of ``params`` whose classification head has zero weights and bias
    logit(positive rate of ``labels``): every training run starts from the base rate, not
    from the random (or pretrained-shared) ranking of an earlier head."""
    rate = float(np.clip(np.mean(np.asarray(labels, np.float64)), 1e-3, 1 - 1e-3))
    out = {module: dict(leaves) for module, leaves in params.items()}
    head = out[CLASSIFICATION_HEAD]
    out[CLASSIFICATION_HEAD] = {
        "w": np.zeros_like(np.asarray(head["w"])),
        "b": np.full_like(np.asarray(head["b"]), np.log(rate / (1 - rate))),
    }
    return out
