"""Typed ``params:ic2bert_finetune`` (conf/base/parameters_ic2bert_finetune.yml; conf/light and
conf/paper override parts of it).

Source of truth of the defaults, one place each:

* the fine-tuning settings of ``common``, ``tiers.<tier>`` and ``zero_shot.head`` /
  ``ensemble.head`` are settings of the algorithm: their defaults and consistency checks are
  ``models.ic2bert.train_config.FinetuneConfig``'s (and ``OptimizerConfig``'s), typed as
  ``models.ic2bert.settings.FinetuneSettings``. These blocks are *partial*: only the keys a
  block sets count; a tier's keys override ``common``'s (the optimizer key by key), a head's
  keys override ``common``'s (the optimizer as a whole), and the dataclass fills in the rest,
  exactly as ``train_config.tier_config`` / ``finetune_config`` did on the dicts
  (``FinetuneParams.tier_settings`` / ``head_settings``).
* everything else belongs to the pipeline (readout, protocols, repeats, the sample-size
  analysis, ...): its defaults are here, what the nodes did without the key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from icb_kedro.config import Config
from icb_kedro.models.ic2bert import settings as algorithm
from icb_kedro.models.ic2bert.settings import FinetuneSettings, null_is_absent
from icb_kedro.models.ic2bert.train_config import FinetuneConfig

Tier = Literal["small", "medium", "large"]  # train_config.TIERS (size_tier: < 50, < 100, more)
# evaluation.protocols.n_repeats: one count for every protocol, or one per protocol; null =
# every repeat of lodocv_folds.
Count = Annotated[int, Field(ge=1)]
Repeats = Count | dict[Literal["transfer", "loco", "within", "transfer_paper"], Count | None] | None


class LinearReadoutSettings(Config):
    """``linear_readout``: L2 strengths searched (inverse, by stratified CV AUROC on the training
    rows), CV folds (capped by the minority class count; < 2: no CV, in-sample), the encoder's
    context (genes per chunk; 0 = the whole panel) and batch when reading features, the
    calibration of the fitted readout (platt: on the training rows' out-of-fold probabilities)
    and ``n_features`` (ANOVA top-k on the training rows, null = every feature).
    """

    Cs: tuple[Annotated[float, Field(gt=0.0)], ...] = Field((0.001, 0.01, 0.1, 1.0), min_length=1)
    n_splits: int = Field(5, ge=1)
    context: int = Field(0, ge=0)
    batch_size: int = Field(8, ge=1)
    calibration: Literal["none", "platt"] = "none"
    n_features: int | None = Field(None, ge=1)


class Ablations(Config):
    """Arms read with every linear readout: random-init encoder; L2-LR on the token bins."""

    random_init: bool = True
    token_lr: bool = True


class Within(Config):
    """``within``: the model trained from random initialisation on target_train only.
    ``n_repeats`` absent: the block's ``n_repeats``; null: every repeat."""

    enabled: bool = True
    n_repeats: Repeats = None


class SourceModels(Config):
    """``zero_shot``: a model trained on the other cohorts' labels (pooled_head readout: the
    head on frozen pooled features, or ``all`` fine-tuned with the tier settings)."""

    enabled: bool = True
    trainable: Literal["head", "all"] = "head"
    head: FinetuneSettings = FinetuneSettings()  # over ``common`` (trainable: head)

    @model_validator(mode="before")
    @classmethod
    def _null_head_is_absent(cls, values: Any) -> Any:
        return null_is_absent(values, "head")


class Ensemble(SourceModels):
    """``ensemble``: one model per source cohort with ``min_samples`` labelled rows of both
    classes; probabilities averaged."""

    min_samples: int = Field(10, ge=0)


class SampleSize(Config):
    """``sample_size``: the cohorts analysed (others skip the node), balanced training sizes n
    (kept: even, up to the largest balanced subset), draws per n, the 80/20 split used."""

    cohorts: tuple[str, ...] = ()
    n_train: tuple[int, ...] = (2, 4, 8)
    repeats: int = Field(3, ge=0)
    trial: int = Field(0, ge=0)

    @field_validator("cohorts", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return () if value is None else value


class Evaluation(Config):
    """``evaluation``: bootstrap of the cohort summary (``summarize_cohorts``)."""

    n_boot: int = Field(1000, ge=1)
    seed: int = 0


class FinetuneParams(Config):
    """``params:ic2bert_finetune``: IC2Bert's transfer / within / loco protocols per held-out
    cohort, the readout, the sample-size analysis and the registered model.

    ``readout``: models.ic2bert.readout.READOUTS but ``tokens`` (an ablation arm only);
    ``transfer_protocols`` (empty: transfer): the first one's best split is registered;
    ``transfer_rows``: which of a transfer split's labelled rows train the readout, per
    protocol (``fold_inputs.transfer_train_keys``); ``threshold_method``:
    evaluation.metrics.THRESHOLD_METHODS.
    """

    seed: int = 0
    readout: Literal["pooled_head", "per_gene_expected_bin", "pooled_lr"] = "per_gene_expected_bin"
    linear_readout: LinearReadoutSettings = LinearReadoutSettings()
    ablations: Ablations = Ablations()
    transfer_protocols: tuple[Literal["transfer", "transfer_paper"], ...] = ("transfer",)
    n_repeats: Repeats = None
    transfer_rows: dict[
        Literal["transfer", "transfer_paper"], Literal["target", "sources_and_target"]
    ] = {"transfer": "sources_and_target", "transfer_paper": "target"}
    threshold_method: Literal["youden", "fixed", "prevalence"] = "youden"
    eval_batch_size: int = Field(64, ge=1)
    common: FinetuneSettings = FinetuneSettings()
    tiers: dict[Tier, FinetuneSettings] = {}  # a tier used but not configured fails the fit
    within: Within = Within()
    zero_shot: SourceModels = SourceModels()
    ensemble: Ensemble = Ensemble()
    sample_size: SampleSize = SampleSize()
    evaluation: Evaluation = Evaluation()

    @model_validator(mode="before")
    @classmethod
    def _null_sections_are_absent(cls, values: Any) -> Any:
        sections = ("linear_readout", "ablations", "common", "within", "zero_shot", "ensemble")
        return null_is_absent(values, *sections, "sample_size", "evaluation")

    @field_validator("transfer_protocols", mode="before")
    @classmethod
    def _no_protocol_is_transfer(cls, value: Any) -> Any:
        return value or ("transfer",)

    @model_validator(mode="after")
    def _merged_settings_are_valid(self) -> FinetuneParams:
        """Each tier and head as merged over ``common`` passes FinetuneConfig's own checks
        (the field ranges cover them today; this keeps the run-start check complete)."""
        for tier in self.tiers:
            algorithm.named_tier_settings(tier, self.tiers, self.common)
        for section in (self.zero_shot, self.ensemble):
            self.head_settings(section)
        return self

    def tier_settings(self, n_samples: int) -> FinetuneConfig:
        """The fine-tuning settings of a cohort of ``n_samples`` labelled rows: its size tier's
        keys over ``common``'s (``train_config.tier_config``)."""
        return algorithm.tier_settings(n_samples, self.tiers, self.common)

    def head_settings(self, section: SourceModels) -> FinetuneConfig:
        """The settings of a head on frozen features (``zero_shot`` / ``ensemble``): its
        ``head`` keys over ``common``'s."""
        return algorithm.head_settings(section.head, self.common)

    def within_repeats(self) -> Any:
        """``within.n_repeats`` where the block sets it (null included), else ``n_repeats``."""
        if "n_repeats" in self.within.model_fields_set:
            return self.within.n_repeats
        return self.n_repeats


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"ic2bert_finetune": FinetuneParams}
