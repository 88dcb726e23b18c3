"""tokenization nodes and pipeline: tokenizer fitted on the held-out cohort's pool only."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.ic2bert.tokenizer import QuantileBins, token_matrix
from icb_kedro.paths import namespace_for
from icb_kedro.pipelines.tokenization.nodes import (
    fit_tokenizer,
    select_model_input,
    split_pretraining_pool,
    tokenize_samples,
)
from icb_kedro.pipelines.tokenization.pipeline import create_pipeline

PARAMS = {
    "input": "expression_standardized",
    "panel": "ic2bert_prior",
    "n_bins": 4,
    "mlm_val_fraction": 0.1,
    "seed": 0,
}


def _panels() -> pd.DataFrame:
    genes = [f"G{i}" for i in range(10)]
    return pd.DataFrame(
        {"panel": ["ic2bert_prior"] * 8 + ["common"] * 10, "gene": genes[:8] + genes}
    )


def test_select_model_input_takes_the_configured_table_and_panel(expression) -> None:
    shifted = expression.assign(G0=expression["G0"] + 100)
    table = select_model_input(expression, shifted, _panels(), PARAMS)
    assert list(table.columns) == ["cohort", "sample_id", "sample_key", "label"] + [
        f"G{i}" for i in range(8)
    ]
    assert table["G0"].max() < 50
    raw = select_model_input(
        expression,
        shifted,
        _panels(),
        {**PARAMS, "input": "harmonized_expression", "panel": "common"},
    )
    assert raw["G0"].min() > 50 and raw.shape[1] == 4 + 10
    with pytest.raises(ValueError, match="panel 'nope'"):
        select_model_input(expression, shifted, _panels(), {**PARAMS, "panel": "nope"})


def test_pretraining_pool_never_holds_the_held_out_cohort(expression, folds) -> None:
    split = split_pretraining_pool(folds["CohortA"], PARAMS, "CohortA")
    cohorts = expression.set_index("sample_key").loc[split["sample_key"], "cohort"]
    assert set(cohorts) == {"CohortB", "CohortC"}
    assert len(split) == 24 + 20  # every sample of the other cohorts, labelled or not
    assert (split["split"] == "mlm_val").sum() == round(0.1 * 44)
    again = split_pretraining_pool(folds["CohortA"], PARAMS, "CohortA")
    pd.testing.assert_frame_equal(split, again)


def test_tokenizer_sees_only_mlm_training_rows(expression, folds) -> None:
    model_input = select_model_input(expression, expression, _panels(), PARAMS)
    split = split_pretraining_pool(folds["CohortA"], PARAMS, "CohortA")
    bins = fit_tokenizer(model_input, split, PARAMS)
    # Changing the held-out cohort or the MLM-validation rows does not move a single edge.
    held_out_or_val = model_input["cohort"].eq("CohortA") | model_input["sample_key"].isin(
        split.loc[split["split"] == "mlm_val", "sample_key"]
    )
    perturbed = model_input.copy()
    perturbed.loc[held_out_or_val, "G1"] += 1000.0
    pd.testing.assert_frame_equal(fit_tokenizer(perturbed, split, PARAMS), bins)
    train_rows = model_input[
        model_input["sample_key"].isin(split.loc[split["split"] == "mlm_train", "sample_key"])
    ]
    np.testing.assert_allclose(
        bins.set_index("gene").loc["G1"].to_numpy(),
        np.quantile(train_rows["G1"], [0.25, 0.5, 0.75]),
    )
    with pytest.raises(ValueError, match="own samples"):
        fit_tokenizer(model_input, split.assign(held_out="CohortB"), PARAMS)


def test_tokens_cover_every_sample_with_data_ids(expression, folds) -> None:
    model_input = select_model_input(expression, expression, _panels(), PARAMS)
    split = split_pretraining_pool(folds["CohortB"], PARAMS, "CohortB")
    tokenizer = fit_tokenizer(model_input, split, PARAMS)
    tokens = tokenize_samples(model_input, tokenizer)
    assert len(tokens) == len(expression) and list(tokens.columns[:3]) == [
        "cohort",
        "sample_key",
        "label",
    ]
    matrix = token_matrix(tokens, ["CohortB:s5", "CohortA:s0"])
    assert matrix.shape == (2, 8) and matrix.min() >= 0 and matrix.max() <= 3
    assert (
        QuantileBins.from_frame(tokenizer).mask_id == 4
        and not (tokens.iloc[:, 3:] == 4).any().any()
    )
    with pytest.raises(ValueError, match="no tokens"):
        token_matrix(tokens, ["nobody"])


def test_pipeline_has_one_valid_namespace_per_cohort() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an interrupted namespace would warn
        pipeline = create_pipeline(cohorts=["CohortA", "CohortB"])
    assert {n.namespace for n in pipeline.nodes} == {
        None,
        namespace_for("CohortA"),
        namespace_for("CohortB"),
    }
    assert (
        "lodocv_folds_fold_CohortA" in pipeline.inputs() and "lodocv_folds" not in pipeline.inputs()
    )
    assert {
        "fold_CohortA.ic2bert_tokens",
        "fold_CohortB.ic2bert_tokenizer",
    } <= pipeline.all_outputs()
