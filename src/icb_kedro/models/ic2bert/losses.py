"""The fine-tuning loss of IC2Bert (spec 2.5) and the validation BCE used to choose epochs.

``loss_weights`` picks focal loss or BCE by tier and class balance and sets the focal weights;
``weighted_focal_loss`` is the per-row loss (gamma = 0 and weights (1, 1) give plain BCE);
``binary_cross_entropy`` is the numpy BCE of inner-validation logits. Deliberate difference
from the original code (spec section 3, item 12): focal-loss alpha weights the minority
class (alpha = 1 - positive rate for the positive class); the original's alpha = positive
rate does the opposite.
Focal alpha/gamma are traced inputs of the jitted update (no recompilation per fine-tuning).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from icb_kedro.models.ic2bert.train_config import FinetuneConfig


def loss_weights(
    labels: np.ndarray, config: FinetuneConfig, tier: str
) -> tuple[float, float, float]:
    """(positive weight, negative weight, gamma) of the fine-tuning loss (spec 2.5, item 12).

    Focal loss for small and medium tiers, and for large ones when |p - 0.5| > 0.15; BCE
    otherwise (weights 1, 1, gamma 0). Focal alpha weights the minority class: the positive
    class gets 1 - p, the negative class p (p = positive rate of the training rows).
    """
    p = float(np.mean(labels))
    use_focal = config.loss == "focal" or (
        config.loss == "auto" and (tier in ("small", "medium") or abs(p - 0.5) > 0.15)
    )
    if not use_focal:
        return 1.0, 1.0, 0.0
    gamma = config.focal_gamma
    if abs(p - 0.5) > config.focal_imbalance_threshold:
        gamma = min(gamma + min(2 * abs(p - 0.5), 1.0), 3.0)
    return 1.0 - p, p, gamma


def weighted_focal_loss(logits, labels, pos_weight, neg_weight, gamma):
    """Per-row focal loss; gamma = 0 and weights (1, 1) give plain sigmoid BCE."""
    log_p = jax.nn.log_sigmoid(logits)
    log_not_p = jax.nn.log_sigmoid(-logits)
    bce = -(labels * log_p + (1.0 - labels) * log_not_p)
    p_t = jnp.exp(-bce)
    alpha_t = labels * pos_weight + (1.0 - labels) * neg_weight
    return alpha_t * (1.0 - p_t) ** gamma * bce


def binary_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> float:
    p = 1.0 / (1.0 + np.exp(-logits))
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
