"""Pretraining lowers the MLM loss and resumes exactly; fine-tuning rules (spec items 8, 11, 12)."""

from __future__ import annotations

import numpy as np
import pytest

from icb_kedro.models.ic2bert import (
    finetune_loop,
    losses,
    optim,
    pretrain_loop,
    train_config,
    weights,
)
from icb_kedro.models.ic2bert.checkpoint import PretrainCheckpointer
from icb_kedro.models.ic2bert.predict import predict_proba

PRETRAIN = {
    "epochs": 4,
    "batch_size": 16,
    "eval_batch_size": 32,
    "optimizer": {"peak_lr": 3e-3, "warmup_fraction": 0.1},
}


def test_tiny_pretraining_lowers_mlm_loss_and_keeps_best_epoch(tiny_config, token_data) -> None:
    tokens = token_data[0]
    result = pretrain_loop.pretrain(
        tiny_config, tokens[:140], tokens[140:], train_config.pretrain_config(PRETRAIN), seed=0
    )
    history = result.history
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]
    assert result.best_epoch == int(history.loc[history["val_accuracy"].idxmax(), "epoch"])
    assert history["val_accuracy"].max() > 0.3  # above the 1-in-4 chance of 4 balanced bins


class _Interrupt(RuntimeError):
    pass


class _CrashingCheckpointer(PretrainCheckpointer):
    """Saves like the real one, then 'crashes' after a given epoch."""

    crash_after = 2

    def save(self, epoch, *args, **kwargs):
        super().save(epoch, *args, **kwargs)
        if epoch == self.crash_after:
            raise _Interrupt


def test_interrupted_pretraining_resumes_to_the_same_numbers(
    tmp_path, tiny_config, token_data
) -> None:
    tokens = token_data[0]
    config = train_config.pretrain_config({**PRETRAIN, "checkpoint_every": 1})
    reference = pretrain_loop.pretrain(tiny_config, tokens[:140], tokens[140:], config, seed=0)

    crashing = _CrashingCheckpointer(tmp_path / "ckpt")
    with pytest.raises(_Interrupt):
        pretrain_loop.pretrain(
            tiny_config, tokens[:140], tokens[140:], config, 0, crashing, fingerprint="run-a"
        )
    resumed_manager = PretrainCheckpointer(tmp_path / "ckpt")
    assert resumed_manager.latest_epoch() == 2
    resumed = pretrain_loop.pretrain(
        tiny_config, tokens[:140], tokens[140:], config, 0, resumed_manager, fingerprint="run-a"
    )
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    np.testing.assert_allclose(
        resumed.history["train_loss"], reference.history["train_loss"], rtol=1e-5
    )
    for module, leaves in reference.params.items():
        for name, value in leaves.items():
            np.testing.assert_allclose(resumed.params[module][name], value, rtol=1e-5, atol=1e-6)
    # A checkpoint of another configuration is never resumed into this one.
    other = pretrain_loop.pretrain(
        tiny_config,
        tokens[:140],
        tokens[140:],
        train_config.pretrain_config({**PRETRAIN, "epochs": 1}),
        0,
        PretrainCheckpointer(tmp_path / "ckpt"),
        fingerprint="run-b",
    )
    assert list(other.history["epoch"]) == [1]


def test_mlm_validation_in_training_contexts_scores_every_masked_position(
    tiny_config, token_data
) -> None:
    """A ``gene_subset`` model is validated in one seeded partition of the panel into
    contexts of that length (``context_chunks``: every gene in exactly one chunk); a context
    as long as the panel is the whole-panel pass."""
    from icb_kedro.models.ic2bert.predict import context_chunks

    chunks = context_chunks(12, 5, seed=3)
    assert [len(c) for c in chunks] == [4, 4, 4]
    assert sorted(np.concatenate(chunks).tolist()) == list(range(12))
    assert all((np.diff(c) > 0).all() for c in chunks)  # sorted within a chunk
    tokens = token_data[0]
    params = weights.init_params(tiny_config, 0)
    masks = pretrain_loop.mlm_validation_masks(tokens[:40], tiny_config.n_bins, 0)
    whole = pretrain_loop.evaluate_mlm(tiny_config, params, masks, 16)
    same = pretrain_loop.evaluate_mlm(tiny_config, params, masks, 16, context=12)
    assert same == pytest.approx(whole, rel=1e-6)
    chunked = pretrain_loop.evaluate_mlm(tiny_config, params, masks, 16, context=5, seed=3)
    assert 0.0 <= chunked["val_accuracy"] <= 1.0 and np.isfinite(chunked["val_loss"])
    assert chunked != pytest.approx(whole)  # shorter contexts: other predictions


def test_pretraining_rejects_mask_ids_in_data(tiny_config, token_data) -> None:
    tokens = token_data[0].copy()
    tokens[0, 0] = tiny_config.mask_id
    with pytest.raises(ValueError, match="mask id is reserved"):
        pretrain_loop.pretrain(
            tiny_config, tokens[:140], tokens[140:], train_config.pretrain_config(PRETRAIN), seed=0
        )


def test_finetuning_learns_and_selects_on_inner_validation(tiny_config, token_data) -> None:
    tokens, labels = token_data
    init = weights.init_params(tiny_config, 0)
    config = train_config.finetune_config(
        {
            "batch_size": 16,
            "max_epochs": 12,
            "min_epochs": 4,
            "patience": 4,
            "optimizer": {"peak_lr": 3e-3, "warmup_fraction": 0.1},
        }
    )
    result = finetune_loop.finetune(
        tiny_config, init, tokens[:100], labels[:100], config, seed=0, tier="small"
    )
    assert result.selection == "inner_val_auroc" and np.isfinite(result.score)
    history = result.history
    assert result.score == pytest.approx(
        history["val_auroc"].max()
    )  # the chosen epoch has the best inner AUROC
    assert history.loc[history["epoch"] == result.best_epoch, "val_auroc"].iloc[0] == pytest.approx(
        result.score
    )
    p = predict_proba(tiny_config, result.params, tokens[100:])
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels[100:], p) > 0.75
    again = finetune_loop.finetune(
        tiny_config, init, tokens[:100], labels[:100], config, seed=0, tier="small"
    )
    np.testing.assert_allclose(
        predict_proba(tiny_config, again.params, tokens[100:]), p, rtol=1e-6
    )  # same seed, same numbers


def test_head_training_on_frozen_features_changes_only_the_head(tiny_config, token_data) -> None:
    from icb_kedro.models.ic2bert.model import CLASSIFICATION_HEAD
    from icb_kedro.models.ic2bert.predict import pooled_features

    tokens, labels = token_data
    params = weights.init_params(tiny_config, 0)
    features = pooled_features(tiny_config, params, tokens)
    config = train_config.finetune_config(
        {
            "batch_size": 32,
            "max_epochs": 30,
            "min_epochs": 5,
            "patience": 10,
            "optimizer": {"peak_lr": 1e-2, "warmup_fraction": 0.05},
        }
    )
    result = finetune_loop.train_head(tiny_config, params, features, labels, config, seed=0)
    for module, leaves in params.items():
        for name, value in leaves.items():
            same = np.allclose(result.params[module][name], value)
            assert same == (module != CLASSIFICATION_HEAD), module


def test_focal_alpha_weights_the_minority_class() -> None:
    config = train_config.finetune_config({})
    labels = np.array([1] * 2 + [0] * 8)  # 20% responders
    pos, neg, gamma = losses.loss_weights(labels, config, "small")
    assert pos == pytest.approx(0.8) and neg == pytest.approx(
        0.2
    )  # spec item 12: minority up-weighted
    assert gamma == pytest.approx(2.0)  # |p - 0.5| = 0.3 is not above the 0.3 threshold
    balanced_large = losses.loss_weights(np.array([0, 1] * 10), config, "large")
    assert balanced_large == (1.0, 1.0, 0.0)  # large and balanced: plain BCE
    imbalanced = losses.loss_weights(
        np.array([1] + [0] * 9), train_config.finetune_config({"focal_gamma": 2.0}), "large"
    )
    assert imbalanced[2] == pytest.approx(2.8)  # 2.0 + min(2 * 0.4, 1)


def test_size_tiers_and_tier_settings() -> None:
    assert [train_config.size_tier(n) for n in (23, 49, 50, 99, 100, 195)] == [
        "small",
        "small",
        "medium",
        "medium",
        "large",
        "large",
    ]
    tiers = {
        "small": {"batch_size": 8, "optimizer": {"peak_lr": 1e-4}},
        "medium": {"batch_size": 16},
        "large": {"batch_size": 32},
    }
    config = train_config.tier_config(
        30, tiers, {"inner_val_fraction": 0.25, "optimizer": {"weight_decay": 0.02, "peak_lr": 1.0}}
    )
    assert config.batch_size == 8 and config.inner_val_fraction == 0.25
    assert config.optimizer.peak_lr == 1e-4 and config.optimizer.weight_decay == 0.02
    with pytest.raises(ValueError, match="unknown FinetuneConfig keys"):
        train_config.finetune_config({"epochs": 3})


def test_inner_validation_split_is_stratified_or_empty() -> None:
    labels = np.array([1] * 6 + [0] * 14)
    fit, val = finetune_loop.inner_validation_split(labels, 0.2, seed=0)
    assert len(val) == 4 and set(labels[val]) == {0, 1} and not set(fit) & set(val)
    fit, val = finetune_loop.inner_validation_split(
        np.array([1, 0, 0, 0]), 0.2, seed=0
    )  # one responder: no split
    assert len(val) == 0 and len(fit) == 4


def test_schedule_warms_up_then_decays() -> None:
    schedule = optim.learning_rate_schedule(
        train_config.OptimizerConfig(peak_lr=1e-3, warmup_fraction=0.1), 100
    )
    values = [float(schedule(s)) for s in (0, 5, 10, 50, 99)]
    assert values[0] == 0.0 and values[1] < values[2] == pytest.approx(1e-3)
    assert values[2] > values[3] > values[4]
