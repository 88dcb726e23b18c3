"""ic2bert_pretrain: the pipeline includes its upstream; per-fold pretraining on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from icb_kedro.models.ic2bert.checkpoint import ModelBundle
from icb_kedro.paths import discover_cohorts, namespace_for
from icb_kedro.pipelines.ic2bert_pretrain.nodes import checkpoint_directory, pretrain_fold
from icb_kedro.pipelines.ic2bert_pretrain.pipeline import create_pipeline, pretrain_nodes
from icb_kedro.pipelines.tokenization.pipeline import create_pipeline as tokenization_pipeline

COHORTS = ["CohortA", "CohortB", "CohortC"]


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner does not release, so the test can read every output."""

    def _release(self) -> None:
        pass


def _keep_outputs(catalog: DataCatalog, pipeline) -> DataCatalog:
    for name in pipeline.all_outputs():
        catalog[name] = KeptDataset()
    return catalog


def test_registered_pipeline_includes_its_whole_upstream_chain(registered_pipeline) -> None:
    pipeline = registered_pipeline("ic2bert_pretrain")
    assert "build_harmonized_expression" not in {n.name for n in create_pipeline().nodes}
    names = {n.name for n in pipeline.nodes}
    assert {
        "build_harmonized_expression",
        "combine_lodocv_folds",
        "ic2bert_select_model_input",
    } <= names
    assert {f"{namespace_for(c)}.ic2bert_pretrain" for c in discover_cohorts()} <= names
    # Nothing but the raw files and parameters is needed from outside.
    assert {i for i in pipeline.inputs() if not i.startswith("params:")} == {
        "raw_cohort_expression",
        "raw_cohort_clinical",
        "raw_amu_matrix",
        "raw_ic2bert_prior_genes",
    }


def _catalog(synthetic_data, tokenization_params, pretrain_params) -> DataCatalog:
    expression, folds, panels = synthetic_data
    datasets = {
        "expression_standardized": expression,
        "harmonized_expression": expression,
        "gene_panels": panels,
        "params:tokenization": tokenization_params,
        "params:ic2bert_pretrain": pretrain_params,
        **{f"lodocv_folds_{namespace_for(c)}": folds[c] for c in COHORTS},
    }
    return DataCatalog({name: MemoryDataset(value) for name, value in datasets.items()})


def test_tokenization_and_pretraining_run_per_held_out_cohort(
    synthetic_data, tokenization_params, pretrain_params
) -> None:
    catalog = _catalog(synthetic_data, tokenization_params, pretrain_params)
    pipeline = tokenization_pipeline(cohorts=COHORTS) + pretrain_nodes(cohorts=COHORTS)
    SequentialRunner().run(pipeline, _keep_outputs(catalog, pipeline))
    history = catalog.load("ic2bert_pretrain_history")
    assert sorted(history["held_out"].unique()) == COHORTS
    assert (history.groupby("held_out")["epoch"].max() == 2).all()
    for cohort in COHORTS:
        ns = namespace_for(cohort)
        bundle = ModelBundle.from_dict(catalog.load(f"{ns}.ic2bert_pretrained"))
        assert (
            bundle.metadata["held_out"] == cohort
            and bundle.config.n_genes == 8
            and bundle.config.n_bins == 4
        )
        assert bundle.config.d_model == 16  # the configured (tiny) model
        split = catalog.load(f"{ns}.ic2bert_pretrain_split")
        tokens = catalog.load(f"{ns}.ic2bert_tokens")
        assert cohort not in set(tokens.set_index("sample_key").loc[split["sample_key"], "cohort"])
        metrics = catalog.load(f"{ns}.ic2bert_mlm_metrics")
        assert [m["step"] for m in metrics["mlm_val_accuracy"]] == [1, 2]
    assert catalog.load("ic2bert_pretrain_plot").axes


def test_pretraining_refuses_a_pool_holding_the_held_out_cohort(
    synthetic_data, tokenization_params, pretrain_params
) -> None:
    from icb_kedro.pipelines.tokenization.nodes import (
        fit_tokenizer,
        select_model_input,
        split_pretraining_pool,
        tokenize_samples,
    )

    expression, folds, panels = synthetic_data
    model_input = select_model_input(expression, expression, panels, tokenization_params)
    split = split_pretraining_pool(folds["CohortA"], tokenization_params, "CohortA")
    tokenizer = fit_tokenizer(model_input, split, tokenization_params)
    tokens = tokenize_samples(model_input, tokenizer)
    leaky = pd.concat(
        [
            split,
            pd.DataFrame(
                {"sample_key": ["CohortA:s5"], "split": ["mlm_train"], "held_out": ["CohortA"]}
            ),
        ]
    )
    with pytest.raises(ValueError, match="contains its own samples"):
        pretrain_fold(tokens, leaky, tokenizer, pretrain_params, "CohortA")
    with pytest.raises(ValueError, match="belongs to"):
        pretrain_fold(tokens, split, tokenizer, pretrain_params, "CohortB")


def _tokenized_fold(synthetic_data, tokenization_params, held_out: str):
    """(tokens, pretraining split, tokenizer) of one held-out cohort, as tokenization makes them."""
    from icb_kedro.pipelines.tokenization.nodes import (
        fit_tokenizer,
        select_model_input,
        split_pretraining_pool,
        tokenize_samples,
    )

    expression, folds, panels = synthetic_data
    model_input = select_model_input(expression, expression, panels, tokenization_params)
    split = split_pretraining_pool(folds[held_out], tokenization_params, held_out)
    tokenizer = fit_tokenizer(model_input, split, tokenization_params)
    return tokenize_samples(model_input, tokenizer), split, tokenizer


def test_pretraining_resumes_from_its_checkpoint_directory(
    synthetic_data, tokenization_params, pretrain_params, tmp_path
) -> None:
    tokens, split, tokenizer = _tokenized_fold(synthetic_data, tokenization_params, "CohortB")
    pretrain_params["checkpoint_dir"] = str(tmp_path)
    first, history, _ = pretrain_fold(tokens, split, tokenizer, pretrain_params, "CohortB")
    directory = checkpoint_directory(pretrain_params, "CohortB")
    assert directory == tmp_path / "fold_CohortB" / "pretrain"
    (run_folder,) = directory.iterdir()  # one folder per run fingerprint
    assert (run_folder / "2").is_dir()
    # A second run finds the finished checkpoint and trains no further epoch.
    second, history_again, _ = pretrain_fold(tokens, split, tokenizer, pretrain_params, "CohortB")
    pd.testing.assert_frame_equal(
        history.drop(columns="seconds"), history_again.drop(columns="seconds")
    )
    for module, leaves in first["params"].items():
        for name, value in leaves.items():
            np.testing.assert_array_equal(second["params"][module][name], value)


def test_a_run_with_other_settings_does_not_collide_with_old_checkpoints(
    synthetic_data, tokenization_params, pretrain_params, tmp_path
) -> None:
    """Regression: a second run (another seed / epoch count) in the same checkpoint folder
    used to hit orbax's StepAlreadyExistsError at epoch 1, and then to hide its own checkpoints
    behind the older, higher epochs."""
    import copy

    tokens, split, tokenizer = _tokenized_fold(synthetic_data, tokenization_params, "CohortB")
    pretrain_params["checkpoint_dir"] = str(tmp_path)
    pretrain_fold(tokens, split, tokenizer, pretrain_params, "CohortB")  # epochs 1, 2 saved
    other = copy.deepcopy(pretrain_params)
    other["seed"] = int(other.get("seed", 0)) + 1
    other["training"] = {**other.get("training", {}), "epochs": 1}
    _, history, _ = pretrain_fold(tokens, split, tokenizer, other, "CohortB")
    assert list(history["epoch"]) == [1]
    assert len(list(checkpoint_directory(other, "CohortB").iterdir())) == 2  # both runs kept, apart
