"""IC2Bert's algorithm settings as parameter blocks give them: typed, partial (pydantic, no JAX).

The typed blocks ``params:ic2bert_pretrain`` (``pipelines.ic2bert_pretrain.config``) and
``params:ic2bert_finetune`` (``pipelines.ic2bert_finetune.config``) hold these for their
architecture, training and fine-tuning sub-blocks. Source of truth: the dataclasses of
``config.IC2BertConfig`` and ``train_config`` hold the defaults and the consistency checks;
the fields here show those defaults (``train_config.default_of``) and add the types, choices
and ranges a parameter file is checked against. Each block builds its dataclass from the keys
it *sets* (``model_dump(exclude_unset=True)``), through the same ``train_config`` functions
that built it from the dict, so what is unset stays the dataclass's default and merging
(a tier over ``common``) works on the keys given, exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from icb_kedro.config import Config
from icb_kedro.models.ic2bert import train_config as algorithm
from icb_kedro.models.ic2bert.config import IC2BertConfig
from icb_kedro.models.ic2bert.train_config import default_of

_OPTIMIZER, _MASKING = algorithm.OptimizerConfig, algorithm.MaskingConfig
_PRETRAIN, _TUNE = algorithm.PretrainConfig, algorithm.FinetuneConfig


def null_is_absent(values: Any, *keys: str) -> Any:
    """``values`` (a block's raw input) without those ``keys`` that are null: a null sub-block
    reads as an absent one, its defaults, as the ``params.get(key) or {}`` reads did."""
    if isinstance(values, Mapping):
        return {k: v for k, v in values.items() if not (k in keys and v is None)}
    return values


class OptimizerSettings(Config):
    """AdamW + linear warm-up + cosine decay + clipping (``train_config.OptimizerConfig``).

    Keys not given take OptimizerConfig's defaults. ``warmup_fraction`` (of all steps), when
    not null, replaces ``warmup_steps``; the rate decays to ``peak_lr * end_lr_fraction``.
    """

    peak_lr: float = Field(default_of(_OPTIMIZER, "peak_lr"), gt=0.0)
    warmup_steps: int = Field(default_of(_OPTIMIZER, "warmup_steps"), ge=0)
    weight_decay: float = Field(default_of(_OPTIMIZER, "weight_decay"), ge=0.0)
    clip_norm: float = Field(default_of(_OPTIMIZER, "clip_norm"), gt=0.0)
    end_lr_fraction: float = Field(default_of(_OPTIMIZER, "end_lr_fraction"), ge=0.0)
    warmup_fraction: Annotated[float, Field(ge=0.0, le=1.0)] | None = default_of(
        _OPTIMIZER, "warmup_fraction"
    )


class MaskingSettings(Config):
    """BERT-style 80/10/10 masking (``train_config.MaskingConfig``, ``masking.mask_tokens``)."""

    select_prob: float = Field(default_of(_MASKING, "select_prob"), gt=0.0, le=1.0)
    mask_prob: float = Field(default_of(_MASKING, "mask_prob"), ge=0.0, le=1.0)
    random_prob: float = Field(default_of(_MASKING, "random_prob"), ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _probabilities_add_up(self) -> MaskingSettings:
        if self.mask_prob + self.random_prob > 1.0:
            raise ValueError(
                f"mask_prob + random_prob must be <= 1, got {self.mask_prob} + {self.random_prob}"
            )
        return self


class ModelSettings(Config):
    """IC2Bert's architecture (``config.IC2BertConfig``, whose defaults are the paper's model);
    genes and bins come from the fold's tokenizer."""

    d_model: int = Field(default_of(IC2BertConfig, "d_model"), ge=1)
    gene_dim: int = Field(default_of(IC2BertConfig, "gene_dim"), ge=1)
    n_layers: int = Field(default_of(IC2BertConfig, "n_layers"), ge=1)
    n_heads: int = Field(default_of(IC2BertConfig, "n_heads"), ge=1)
    ffn_dim: int = Field(default_of(IC2BertConfig, "ffn_dim"), ge=1)
    dropout: float = Field(default_of(IC2BertConfig, "dropout"), ge=0.0, lt=1.0)
    # config.ATTENTION_IMPLEMENTATIONS, MATMUL_DTYPES, DROPOUT_RNGS (a test keeps them equal).
    attention: Literal["fused", "einsum", "chunked"] = default_of(IC2BertConfig, "attention")
    attention_chunk: int = Field(default_of(IC2BertConfig, "attention_chunk"), ge=1)
    matmul_dtype: Literal["float32", "bfloat16"] = default_of(IC2BertConfig, "matmul_dtype")
    dropout_rng: Literal["hash", "threefry"] = default_of(IC2BertConfig, "dropout_rng")
    scan_layers: bool = default_of(IC2BertConfig, "scan_layers")

    @model_validator(mode="after")
    def _heads_divide_the_width(self) -> ModelSettings:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        return self

    def build(self, n_genes: int, n_bins: int) -> IC2BertConfig:
        """The architecture for a tokenizer's ``n_genes`` and ``n_bins``."""
        return IC2BertConfig(n_genes=n_genes, n_bins=n_bins, **self.model_dump(exclude_unset=True))


class TrainingSettings(Config):
    """The pretraining recipe (``train_config.PretrainConfig``): epochs, batch, gradient-
    accumulation micro-batch (0 = off), genes per step (0 = the whole panel), resumable
    checkpoint every N epochs (0 = never), optimizer, masking."""

    epochs: int = Field(default_of(_PRETRAIN, "epochs"), ge=1)
    batch_size: int = Field(default_of(_PRETRAIN, "batch_size"), ge=1)
    optimizer: OptimizerSettings = OptimizerSettings()  # = PretrainConfig's default optimizer
    masking: MaskingSettings = MaskingSettings()
    eval_batch_size: int = Field(default_of(_PRETRAIN, "eval_batch_size"), ge=1)
    checkpoint_every: int = Field(default_of(_PRETRAIN, "checkpoint_every"), ge=0)
    micro_batch_size: int = Field(default_of(_PRETRAIN, "micro_batch_size"), ge=0)
    gene_subset: int = Field(default_of(_PRETRAIN, "gene_subset"), ge=0)

    def build(self) -> algorithm.PretrainConfig:
        return algorithm.pretrain_config(self.model_dump(exclude_unset=True))


class FinetuneSettings(Config):
    """Fine-tuning settings (``train_config.FinetuneConfig``) as ``common``, a size tier or a
    head gives them: partial, only the keys set are merged (``given``).

    ``optimizer`` absent (or null): FinetuneConfig's default optimizer (weight_decay 0.015,
    clip_norm 0.5); given, its missing keys take OptimizerConfig's defaults (0.01, 1.0).
    """

    batch_size: int = Field(default_of(_TUNE, "batch_size"), ge=1)
    max_epochs: int = Field(default_of(_TUNE, "max_epochs"), ge=1)
    min_epochs: int = Field(default_of(_TUNE, "min_epochs"), ge=0)
    patience: int = Field(default_of(_TUNE, "patience"), ge=1)
    optimizer: OptimizerSettings | None = None
    loss: Literal["auto", "focal", "bce"] = default_of(_TUNE, "loss")
    focal_gamma: float = Field(default_of(_TUNE, "focal_gamma"), ge=0.0)
    focal_imbalance_threshold: float = Field(
        default_of(_TUNE, "focal_imbalance_threshold"), ge=0.0, le=0.5
    )
    inner_val_fraction: float = Field(default_of(_TUNE, "inner_val_fraction"), gt=0.0, lt=1.0)
    eval_batch_size: int = Field(default_of(_TUNE, "eval_batch_size"), ge=1)
    micro_batch_size: int = Field(default_of(_TUNE, "micro_batch_size"), ge=0)
    linear_probe_epochs: int = Field(default_of(_TUNE, "linear_probe_epochs"), ge=0)
    encoder_lr_scale: float = Field(default_of(_TUNE, "encoder_lr_scale"), gt=0.0, le=1.0)

    def given(self) -> dict[str, Any]:
        """The keys set, as the dict ``train_config`` merges (a null optimizer counts as unset)."""
        values = self.model_dump(exclude_unset=True)
        if "optimizer" in values and values["optimizer"] is None:
            del values["optimizer"]
        return values


def tier_settings(
    n_samples: int, tiers: dict[str, FinetuneSettings], common: FinetuneSettings
) -> algorithm.FinetuneConfig:
    """The settings of a cohort of ``n_samples`` labelled rows: its size tier's keys over
    ``common``'s, the optimizer key by key (``train_config.tier_config``)."""
    return algorithm.tier_config(n_samples, _given(tiers), common.given())


def named_tier_settings(
    tier: str, tiers: dict[str, FinetuneSettings], common: FinetuneSettings
) -> algorithm.FinetuneConfig:
    return algorithm.named_tier_config(tier, _given(tiers), common.given())


def head_settings(head: FinetuneSettings, common: FinetuneSettings) -> algorithm.FinetuneConfig:
    """The settings of a head on frozen features: its keys over ``common``'s, the optimizer
    as a whole (no key-by-key merge, unlike the tiers)."""
    return algorithm.finetune_config({**common.given(), **head.given()})


def _given(tiers: dict[str, FinetuneSettings]) -> dict[str, dict[str, Any]]:
    return {tier: settings.given() for tier, settings in tiers.items()}
