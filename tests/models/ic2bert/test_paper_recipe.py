"""The paper-size recipe (`kedro run --env paper --pipelines ic2bert_finetune`) as configured,
checked on CPU at tiny size: its settings parse into the model/training configs, and one
pretraining epoch and one fine-tuning epoch of that recipe run end to end on shrunk widths."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def paper_params() -> dict:
    from kedro.config import OmegaConfigLoader

    from icb_kedro.settings import CONFIG_LOADER_ARGS

    # The project's loader settings (parameters soft-merged), run environment paper.
    loader = OmegaConfigLoader(
        str(ROOT / "conf"), **{**CONFIG_LOADER_ARGS, "default_run_env": "paper"}
    )
    return loader["parameters"]


def test_paper_environment_is_the_papers_recipe(paper_params) -> None:
    from icb_kedro.models.ic2bert import train_config
    from icb_kedro.models.ic2bert.config import IC2BertConfig

    pretrain = paper_params["ic2bert_pretrain"]
    model = IC2BertConfig(n_genes=983, **pretrain["model"])
    assert (model.d_model, model.n_layers, model.n_heads, model.ffn_dim, model.gene_dim) == (
        128,
        4,
        4,
        256,
        64,
    )
    config = train_config.pretrain_config(pretrain["training"])
    assert config.epochs == 600 and config.gene_subset == 0  # the whole panel every step
    panels = paper_params["harmonization"]["panels"]
    from icb_kedro.panels import _min_cohorts

    cohorts = [f"c{i}" for i in range(13)]
    assert panels["ic2bert_prior"]["genes"] == "ic2bert_prior"
    assert _min_cohorts(panels["ic2bert_prior"], cohorts, "ic2bert_prior") == (
        1,
        set(),
    )  # 983 where present (in >= 1 cohort)
    assert _min_cohorts(panels["amu160"], cohorts, "amu160") == (
        12,
        set(),
    )  # the other panels as conf/base
    assert paper_params["tokenization"]["panel"] == "ic2bert_prior"  # conf/base reads common
    finetune = paper_params["ic2bert_finetune"]
    assert (
        finetune["readout"] == "pooled_head" and finetune["n_repeats"] is None
    )  # every repeat: 10 K-fold rounds, 10 paper splits
    # Fine-tuned on h's training rows only in both transfer protocols (conf/base adds the
    # labelled sources to `transfer`'s readout).
    assert finetune["transfer_rows"] == {"transfer": "target", "transfer_paper": "target"}
    tiers = {
        n: train_config.tier_config(n, finetune["tiers"], finetune["common"]) for n in (20, 60, 120)
    }
    assert [t.max_epochs for t in tiers.values()] == [100, 100, 100]
    assert [t.batch_size for t in tiers.values()] == [8, 16, 32]


def test_paper_recipe_runs_at_tiny_size(paper_params, tiny_config, token_data) -> None:
    from icb_kedro.models.ic2bert import finetune_loop, pretrain_loop, train_config

    pretrain = paper_params["ic2bert_pretrain"]["training"]
    config = dataclasses.replace(
        train_config.pretrain_config(pretrain), epochs=1, checkpoint_every=0
    )
    tokens, labels = token_data
    tokens = tokens.copy()
    tokens[:20, :4] = tiny_config.missing_id  # a panel cohort in the pool
    result = pretrain_loop.pretrain(tiny_config, tokens[:140], tokens[140:], config, seed=0)
    assert len(result.history) == 1 and np.isfinite(result.history["train_loss"]).all()
    finetune = paper_params["ic2bert_finetune"]
    tier = dataclasses.replace(
        train_config.tier_config(len(labels), finetune["tiers"], finetune["common"]),
        max_epochs=1,
        min_epochs=1,
        linear_probe_epochs=1,
    )
    tuned = finetune_loop.finetune(
        tiny_config, result.params, tokens[:120], labels[:120], tier, seed=0, tier="large"
    )
    assert tuned.best_epoch == 1
