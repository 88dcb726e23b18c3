"""Fixed-shape batching for IC2Bert training and scoring.

``iterate_batches`` yields shuffled (or ordered) row batches of one size, the last padded with
weight-0 rows, so every jitted update compiles once; ``steps_per_epoch`` counts them;
``accumulated_value_and_grad`` sums a loss's value and gradient over micro-batches of a batch
(gradient accumulation inside the jitted step); ``predict_logits_with`` scores rows in padded
batches from the fixed buckets of ``predict.eval_batch_size``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from icb_kedro.models.ic2bert.predict import eval_batch_size


def iterate_batches(
    n_rows: int, batch_size: int, rng: np.random.Generator | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (row indices, row weights) batches of a fixed size; the last one is padded
    with weight-0 rows so every batch has the same shape (one jit compilation)."""
    if n_rows < 1:
        raise ValueError("iterate_batches: no rows")
    order = rng.permutation(n_rows) if rng is not None else np.arange(n_rows)
    for start in range(0, n_rows, batch_size):
        idx = order[start : start + batch_size]
        weights = np.ones(batch_size, np.float32)
        if len(idx) < batch_size:
            weights[len(idx) :] = 0.0
            idx = np.concatenate([idx, np.resize(idx, batch_size - len(idx))])
        yield idx, weights


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return math.ceil(n_rows / batch_size)


def accumulated_value_and_grad(sum_loss: Callable, params, key, batch: tuple, micro_batch: int):
    """``value_and_grad(sum_loss, has_aux=True)`` summed over micro-batches of ``batch``.

    ``sum_loss(params, key, *arrays) -> (loss_sum, aux)`` must return *sums* over rows, so
    the result equals the full-batch value; the caller divides by the total weight.
    Micro-batches run sequentially in a ``lax.scan`` (one compiled body, buffers reused).
    """
    grad_fn = jax.value_and_grad(sum_loss, has_aux=True)
    n_rows = batch[0].shape[0]
    if micro_batch <= 0 or micro_batch >= n_rows or n_rows % micro_batch:
        return grad_fn(params, key, *batch)
    n_micro = n_rows // micro_batch
    split = tuple(a.reshape(n_micro, micro_batch, *a.shape[1:]) for a in batch)
    keys = jax.random.split(key, n_micro)
    shapes = jax.eval_shape(grad_fn, params, keys[0], *(a[0] for a in split))
    zeros = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

    def body(total, xs):
        micro_key, *arrays = xs
        return jax.tree_util.tree_map(jnp.add, total, grad_fn(params, micro_key, *arrays)), None

    total, _ = jax.lax.scan(body, zeros, (keys, *split))
    return total


def predict_logits_with(
    predict: Callable, params, inputs: np.ndarray, batch_size: int
) -> np.ndarray:
    out = np.empty(len(inputs), np.float64)
    batch_size = eval_batch_size(len(inputs), batch_size)
    for start in range(0, len(inputs), batch_size):
        idx = np.arange(start, min(start + batch_size, len(inputs)))
        padded = np.resize(idx, batch_size)  # fixed shapes: one compilation per bucket
        out[idx] = np.asarray(predict(params, inputs[padded]))[: len(idx)]
    return out
