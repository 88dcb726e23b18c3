"""Typed ``params:tokenization`` (conf/base/parameters_tokenization.yml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from icb_kedro.config import Config


class TokenizationConfig(Config):
    """IC2Bert's input table and quantile tokenizer.

    ``input``: per-cohort z-scores (one set of per-gene quantile bins then means the same
    thing in every cohort) or log2(TPM+1); ``panel``: a ``gene_panels`` panel;
    ``mlm_val_fraction``: pretraining-pool rows kept aside to pick the pretraining
    checkpoint.
    """

    input: Literal["expression_standardized", "harmonized_expression"] = "expression_standardized"
    panel: str = "ic2bert_prior"
    n_bins: int = Field(4, ge=2)
    mlm_val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    seed: int = 0


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"tokenization": TokenizationConfig}
