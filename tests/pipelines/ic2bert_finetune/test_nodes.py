"""ic2bert_finetune nodes: protocols, no test-label access before scoring, registry records."""

from __future__ import annotations

import numpy as np
import pytest

from icb_kedro.evaluation.protocols import iter_protocol_folds
from icb_kedro.evaluation.summary import validate_predictions
from icb_kedro.models.ic2bert.checkpoint import ModelBundle
from icb_kedro.models.ic2bert.registration import input_transform
from icb_kedro.pipelines.ic2bert_finetune.nodes import (
    finetune_transfer,
    finetune_within,
    register_best_model,
    sample_size_analysis,
    summarize_sample_size,
    zero_shot_and_ensemble,
)
from icb_kedro.schema import PREDICTION_COLUMNS


def _fold(world, cohort="CohortA"):
    item = world["cohorts"][cohort]
    return item["tokens"], item["folds"], item["pretrained"]


def test_transfer_scores_each_trials_test_rows_once(world, finetune_params) -> None:
    tokens, folds, pretrained = _fold(world)
    predictions, history, best = finetune_transfer(
        tokens, folds, pretrained, finetune_params, "CohortA"
    )
    validate_predictions(predictions)
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert set(predictions["protocol"]) == {"transfer"} and set(predictions["model"]) == {"ic2bert"}
    for spec in iter_protocol_folds(folds, ["transfer"], 1):
        rows = predictions[predictions["trial"] == spec.trial]
        assert sorted(rows["sample_key"]) == spec.test_keys
        target_train = folds[(folds.trial == spec.trial) & (folds.role == "target_train")]
        assert (rows["n_train"] == len(target_train)).all()  # fine-tuned on h's training rows only
    assert (
        predictions["sample_key"].is_unique and predictions["repeat"].eq(0).all()
    )  # out of fold: each patient once
    assert set(history["trial"]) == {0, 1, 2} and set(history["selection"]) <= {
        "inner_val_auroc",
        "inner_val_loss",
    }
    bundle = ModelBundle.from_dict(best)
    assert bundle.metadata["stage"] == "fine-tuned" and bundle.metadata["trial"] in (0, 1, 2)
    # Picked on inner validation only, on one scale for every trial: the chosen epoch's loss.
    at_best = history[history["epoch"] == history["best_epoch"]].set_index("trial")["val_loss"]
    assert bundle.metadata["trial"] == int(at_best.idxmin())
    assert bundle.metadata["inner_val_loss"] == pytest.approx(at_best.min())


@pytest.mark.parametrize(
    "params_fixture", ["finetune_params", "readout_params"]
)  # pooled head; linear readout
def test_finetuning_never_reads_test_labels(world, params_fixture, request) -> None:
    finetune_params = request.getfixturevalue(params_fixture)
    tokens, folds, pretrained = _fold(world)
    test_keys = set(folds.loc[(folds.trial == 0) & (folds.role == "target_test"), "sample_key"])
    flipped = tokens.copy()
    is_test = flipped["sample_key"].isin(test_keys)
    flipped.loc[is_test, "label"] = 1 - flipped.loc[is_test, "label"]
    original, _, _ = finetune_transfer(tokens, folds, pretrained, finetune_params, "CohortA")
    changed, _, _ = finetune_transfer(flipped, folds, pretrained, finetune_params, "CohortA")
    # Trial 0's test rows train the other splits of the repeat: compare trial 0 only.
    original, changed = original[original["trial"] == 0], changed[changed["trial"] == 0]
    # Same probabilities and thresholds: labels of test rows reach only the y_true column.
    np.testing.assert_array_equal(original["y_prob"], changed["y_prob"])
    np.testing.assert_array_equal(original["threshold"], changed["threshold"])
    assert (original["y_true"] != changed["y_true"]).all()


def test_within_trains_from_scratch_on_target_rows(world, finetune_params) -> None:
    tokens, folds, pretrained = _fold(world, "CohortB")
    predictions, history = finetune_within(tokens, folds, pretrained, finetune_params, "CohortB")
    validate_predictions(predictions)
    assert set(predictions["protocol"]) == {"within"} and set(predictions["trial"]) == {
        0,
        1,
        2,
    }  # within.n_repeats = 1
    finetune_params["within"]["enabled"] = False
    empty, _ = finetune_within(tokens, folds, pretrained, finetune_params, "CohortB")
    assert empty.empty and list(empty.columns) == list(PREDICTION_COLUMNS)


def test_zero_shot_and_ensemble_use_no_label_of_the_held_out_cohort(world, finetune_params) -> None:
    tokens, folds, pretrained = _fold(world, "CohortC")
    predictions, history = zero_shot_and_ensemble(
        tokens, folds, pretrained, finetune_params, "CohortC"
    )
    validate_predictions(predictions)
    assert set(predictions["protocol"]) == {"loco"}
    assert set(predictions["model"]) == {"ic2bert", "ic2bert_ensemble"}
    labelled_c = folds[(folds.trial == 0) & folds.role.isin(["target_train", "target_test"])]
    for _, rows in predictions.groupby("model"):
        assert sorted(rows["sample_key"]) == sorted(
            labelled_c["sample_key"]
        )  # every labelled sample of h
        assert (rows["n_train"] == (folds[(folds.trial == 0)].role == "source").sum()).all()
    assert set(history["member"]) == {"zero_shot", "ensemble:CohortA", "ensemble:CohortB"}
    # Changing every label of h changes nothing but y_true.
    flipped = tokens.copy()
    in_c = flipped["cohort"].eq("CohortC") & flipped["label"].notna()
    flipped.loc[in_c, "label"] = 1 - flipped.loc[in_c, "label"]
    again, _ = zero_shot_and_ensemble(flipped, folds, pretrained, finetune_params, "CohortC")
    np.testing.assert_array_equal(again["y_prob"], predictions["y_prob"])


def test_sample_size_analysis(world, finetune_params) -> None:
    tokens, folds, pretrained = _fold(world)
    table = sample_size_analysis(tokens, folds, pretrained, finetune_params, "CohortA")
    # n = 100 exceeds the largest balanced subset and is dropped; n = 0 is the zero-shot head.
    assert sorted(table["n_train"].unique()) == [0, 2, 4]
    assert set(table.loc[table.n_train == 2, "repeat"]) == {0, 1} and set(
        table.loc[table.n_train == 0, "repeat"]
    ) == {0}
    summary = summarize_sample_size(table)
    assert len(summary) == 5 and summary["auroc"].between(0, 1).all()
    skipped = sample_size_analysis(tokens, folds, pretrained, finetune_params, "CohortB")
    assert skipped.empty and "n_train" in skipped.columns


def test_registry_record(world, finetune_params) -> None:
    tokens, folds, pretrained = _fold(world)
    _, _, best = finetune_transfer(tokens, folds, pretrained, finetune_params, "CohortA")
    model, record = register_best_model(best, finetune_params, "CohortA")
    assert model is best
    assert best["metadata"]["input_transform"] == "cohort_zscore"  # trained on per-cohort z-scores
    assert input_transform("harmonized_expression") == "none"
    assert record.loc[0, "model_name"] == "icb_ic2bert_fold_CohortA" and record.loc[0, "trial"] == 0
    with pytest.raises(ValueError, match="registered for"):
        register_best_model(best, finetune_params, "CohortB")


def test_nodes_refuse_another_cohorts_model(world, finetune_params) -> None:
    tokens, folds, _ = _fold(world)
    with pytest.raises(ValueError, match="given to the fold of"):
        finetune_transfer(
            tokens, folds, world["cohorts"]["CohortB"]["pretrained"], finetune_params, "CohortA"
        )


# --------------------------------------------------------------------------- linear readouts
ARMS = {"ic2bert", "ic2bert_random_init", "ic2bert_token_lr"}


def test_readout_transfer_scores_every_arm_on_the_same_rows_and_registers_the_readout(
    world, readout_params
) -> None:
    from icb_kedro.models.ic2bert.predict import score_tokens
    from icb_kedro.models.ic2bert.tokenizer import token_matrix

    tokens, folds, pretrained = _fold(world)
    predictions, history, best = finetune_transfer(
        tokens, folds, pretrained, readout_params, "CohortA"
    )
    validate_predictions(predictions)
    assert set(predictions["model"]) == ARMS and set(predictions["protocol"]) == {"transfer"}
    for spec in iter_protocol_folds(folds, ["transfer"], 1):
        # The baselines' transfer rows: the labelled sources and h's target_train.
        train = folds[(folds.trial == spec.trial) & folds.role.isin(["source", "target_train"])]
        assert sorted(train["sample_key"]) == spec.train_keys
        for _, rows in predictions[predictions["trial"] == spec.trial].groupby("model"):
            assert sorted(rows["sample_key"]) == spec.test_keys  # the same test rows for every arm
            assert (rows["n_train"] == len(train)).all()
    assert (
        history["selection"].str.startswith("readout_cv_auroc").all()
        and history["train_auroc"].between(0, 1).all()
    )
    bundle = ModelBundle.from_dict(best)
    assert (
        bundle.metadata["readout_kind"] == "per_gene_expected_bin"
        and bundle.metadata["selection"] == "readout_cv_auroc"
    )
    # The registered bundle scores through its readout exactly as the fold did.
    trial = bundle.metadata["trial"]
    rows = predictions[(predictions["model"] == "ic2bert") & (predictions["trial"] == trial)]
    again = score_tokens(bundle, token_matrix(tokens, rows["sample_key"].tolist()), 16)
    np.testing.assert_allclose(again, rows["y_prob"].to_numpy(), rtol=1e-6)


def test_transfer_rows_target_trains_the_readout_on_h_alone_and_never_on_its_test_rows(
    world, readout_params
) -> None:
    """``transfer_rows: target`` (the paper's fine-tuning set): h's target_train only; either
    setting keeps the split's test rows out of training (their labels flipped, nothing moves)."""
    tokens, folds, pretrained = _fold(world)
    params = {**readout_params, "transfer_rows": {"transfer": "target"}}
    predictions, _, _ = finetune_transfer(tokens, folds, pretrained, params, "CohortA")
    for spec in iter_protocol_folds(folds, ["transfer"], 1):
        target_train = folds[(folds.trial == spec.trial) & (folds.role == "target_train")]
        assert (
            predictions.loc[predictions["trial"] == spec.trial, "n_train"] == len(target_train)
        ).all()
    spec = next(iter_protocol_folds(folds, ["transfer"], 1))
    flipped = tokens.copy()
    test_rows = flipped["sample_key"].isin(spec.test_keys)
    flipped.loc[test_rows, "label"] = 1 - flipped.loc[test_rows, "label"]
    for setting in ("target", "sources_and_target"):
        params = {**readout_params, "transfer_rows": {"transfer": setting}}
        first, _, _ = finetune_transfer(tokens, folds, pretrained, params, "CohortA")
        again, _, _ = finetune_transfer(flipped, folds, pretrained, params, "CohortA")
        trial = first["trial"] == spec.trial
        np.testing.assert_array_equal(
            first.loc[trial, "y_prob"].to_numpy(), again.loc[trial, "y_prob"].to_numpy()
        )


def test_readout_zero_shot_and_ensemble_use_no_label_of_the_held_out_cohort(
    world, readout_params
) -> None:
    from icb_kedro.pipelines.ic2bert_finetune.nodes import learning_check, summarize_learning_check

    tokens, folds, pretrained = _fold(world, "CohortC")
    predictions, history = zero_shot_and_ensemble(
        tokens, folds, pretrained, readout_params, "CohortC"
    )
    validate_predictions(predictions)
    assert set(predictions["model"]) == ARMS | {"ic2bert_ensemble"} and set(
        predictions["protocol"]
    ) == {"loco"}
    flipped = tokens.copy()
    in_c = flipped["cohort"].eq("CohortC") & flipped["label"].notna()
    flipped.loc[in_c, "label"] = 1 - flipped.loc[in_c, "label"]
    again, _ = zero_shot_and_ensemble(flipped, folds, pretrained, readout_params, "CohortC")
    np.testing.assert_array_equal(again["y_prob"], predictions["y_prob"])
    check = learning_check(predictions, history)
    assert set(check["model"]) == ARMS | {"ic2bert_ensemble"}
    fitted = check[check["model"] != "ic2bert_ensemble"]
    assert (
        fitted["train_auroc"].between(0, 1).all() and (fitted["test_prob_sd"] > 0).all()
    )  # not a constant predictor
    summary = summarize_learning_check(check)
    assert (
        set(summary["model"]) == ARMS | {"ic2bert_ensemble"} and (summary["n_cohorts"] == 1).all()
    )
