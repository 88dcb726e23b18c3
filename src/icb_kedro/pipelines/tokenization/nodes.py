"""Nodes of the tokenization pipeline (numpy/pandas only: no JAX here).

Per held-out cohort h: split h's pretraining pool (every sample of the other cohorts,
``schema.PRETRAIN_ROLES``) into MLM train / validation rows, fit per-gene quantile bins on
the MLM-train rows only (spec item 9) and tokenize every sample with those frozen bins.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import pretrain_pool_keys
from icb_kedro.models.ic2bert.tokenizer import (
    SPLIT_TRAIN,
    SPLIT_VAL,
    TOKEN_META,
    QuantileBins,
    fit_quantile_bins,
    tokenize,
)
from icb_kedro.schema import COHORT, META_COLUMNS, SAMPLE_KEY, gene_columns

from .config import TokenizationConfig

logger = logging.getLogger(__name__)


def select_model_input(
    expression_standardized: pd.DataFrame,
    harmonized_expression: pd.DataFrame,
    gene_panels: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """The IC2Bert input table: metadata + the configured panel's genes from the configured scale.

    ``params.input``: ``expression_standardized`` (per-cohort z-scores, default: one set of
    per-gene quantile bins then means the same thing in every cohort) or
    ``harmonized_expression`` (log2(TPM+1)). ``params.panel``: a ``gene_panels`` panel.
    """
    config = TokenizationConfig.of(params, "params:tokenization")
    source, panel = config.input, config.panel
    table = (
        expression_standardized if source == "expression_standardized" else harmonized_expression
    )
    genes = gene_panels.loc[gene_panels["panel"] == panel, "gene"].tolist()
    if not genes:
        raise ValueError(
            f"gene panel {panel!r} is empty or unknown; gene_panels has "
            f"{sorted(gene_panels['panel'].unique())}"
        )
    missing = sorted(set(genes) - set(gene_columns(table)))
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} genes of panel {panel!r}: {missing[:10]}")
    logger.info("IC2Bert input: %s, panel %s (%d genes)", source, panel, len(genes))
    return table[[*META_COLUMNS, *genes]].reset_index(drop=True)


def split_pretraining_pool(
    lodocv_folds: pd.DataFrame, params: dict[str, Any], held_out: str
) -> pd.DataFrame:
    """h's pretraining pool, split at random into MLM train / validation rows
    (``sample_key, split``).

    The validation rows (``mlm_val_fraction``, default 10%) only pick the pretraining
    checkpoint; h never enters the pool.
    """
    keys = np.asarray(pretrain_pool_keys(lodocv_folds, held_out))
    config = TokenizationConfig.of(params, "params:tokenization")
    n_val = max(1, int(round(config.mlm_val_fraction * len(keys))))
    if len(keys) - n_val < 2:
        raise ValueError(f"pretraining pool of {held_out!r} has only {len(keys)} samples")
    order = np.random.default_rng(config.seed).permutation(len(keys))
    split = np.full(len(keys), SPLIT_TRAIN, dtype=object)
    split[order[:n_val]] = SPLIT_VAL
    return pd.DataFrame({SAMPLE_KEY: keys, "split": split.astype(str), "held_out": held_out})


def fit_tokenizer(
    model_input: pd.DataFrame, pretrain_split: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Per-gene quantile bins fitted on the MLM-train rows of the pool only (frozen afterwards)."""
    train_keys = set(pretrain_split.loc[pretrain_split["split"] == SPLIT_TRAIN, SAMPLE_KEY])
    rows = model_input[model_input[SAMPLE_KEY].isin(train_keys)]
    if len(rows) != len(train_keys):
        unknown = sorted(train_keys - set(rows[SAMPLE_KEY]))
        raise ValueError(
            f"{len(unknown)} pretraining keys are not in the IC2Bert input table, "
            f"e.g. {unknown[:3]}"
        )
    held_out = pretrain_split["held_out"].iloc[0]
    if (rows[COHORT] == held_out).any():
        raise ValueError(
            f"tokenizer of held-out cohort {held_out!r} would be fitted on its own samples"
        )
    n_bins = TokenizationConfig.of(params, "params:tokenization").n_bins
    bins = fit_quantile_bins(rows, gene_columns(model_input), n_bins)
    return bins.to_frame()


def tokenize_samples(model_input: pd.DataFrame, tokenizer: pd.DataFrame) -> pd.DataFrame:
    """Every sample tokenized with the fold's frozen bins: ``cohort, sample_key,
    label`` + gene token columns."""
    bins = QuantileBins.from_frame(tokenizer)
    tokens = tokenize(bins, model_input, where="ic2bert_model_input")
    frame = pd.DataFrame(tokens.astype(np.int16), columns=list(bins.genes))
    return pd.concat([model_input[list(TOKEN_META)].reset_index(drop=True), frame], axis=1)
