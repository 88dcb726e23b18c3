"""Typed ``params:ic2bert_pretrain`` (conf/base/parameters_ic2bert_pretrain.yml; conf/light and
conf/paper override parts of it).

Source of truth of the defaults, one place each:

* ``model`` (the architecture) and ``training`` (the recipe) are settings of the algorithm:
  their defaults and checks are those of ``models.ic2bert.config.IC2BertConfig`` and
  ``models.ic2bert.train_config.PretrainConfig`` (typed as ``models.ic2bert.settings``).
  Without a ``model`` block that is the paper's model, without ``training`` a 10-epoch run
  of the whole panel; conf/base sets a smaller CPU model and a 4-epoch run.
* ``seed``, ``checkpoint_dir`` and ``resume`` belong to the pipeline: their defaults are here.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from icb_kedro.config import Config
from icb_kedro.models.ic2bert.config import IC2BertConfig
from icb_kedro.models.ic2bert.settings import ModelSettings, TrainingSettings, null_is_absent
from icb_kedro.models.ic2bert.train_config import PretrainConfig as TrainingConfig


class PretrainConfig(Config):
    """``params:ic2bert_pretrain``: one masked-expression pretraining per held-out cohort.

    ``checkpoint_dir`` (relative to the project root; null or "" = no checkpoints) holds
    ``<namespace>/pretrain/<run fingerprint>/``; ``resume``: continue an interrupted run of the
    same settings from its latest checkpoint (false: no checkpoints either).
    """

    seed: int = 0
    model: ModelSettings = ModelSettings()
    training: TrainingSettings = TrainingSettings()
    checkpoint_dir: str | None = None
    resume: bool = True

    @model_validator(mode="before")
    @classmethod
    def _null_blocks_are_absent(cls, values: Any) -> Any:
        return null_is_absent(values, "model", "training")

    def architecture(self, n_genes: int, n_bins: int) -> IC2BertConfig:
        """``IC2BertConfig`` of ``model`` for a tokenizer's genes and bins."""
        return self.model.build(n_genes, n_bins)

    def training_config(self) -> TrainingConfig:
        """``train_config.PretrainConfig`` of ``training`` (its repr keys the checkpoints)."""
        return self.training.build()


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"ic2bert_pretrain": PretrainConfig}
