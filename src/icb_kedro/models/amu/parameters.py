"""Typed ``params:amu`` (conf/base/parameters_amu.yml; conf/light, conf/paper: overrides).

Where the defaults live: the network's (``amu.model``) and the recipe's (``amu.train``) are
read from the algorithm's own dataclasses, the source of truth:
``icb_kedro.models.amu.architecture.AmuConfig`` and
``icb_kedro.models.amu.train_config.TrainConfig`` (both plain data: no Paddle loads here).
The other defaults are those the nodes used when a key was absent. A setting's ``train``
(``amu.study.train``, ``amu.cohorts.train``) overrides only the keys it names;
:meth:`AmuConfig.train_config` merges them into the ``TrainConfig`` the folds are fitted with.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from icb_kedro.config import Config
from icb_kedro.models.amu.architecture import AmuConfig as Architecture
from icb_kedro.models.amu.architecture import Engine
from icb_kedro.models.amu.features import PSEUDO_COUNT
from icb_kedro.models.amu.train_config import TrainConfig

_NETWORK = Architecture()  # amu.model defaults (n_genes: the panel's size, set per fit)
_RECIPE = TrainConfig()  # amu.train defaults (seed: the fold's or final_model.seed)

# The choices the code accepts (tests/pipelines/amu/test_config.py checks them against
# models.amu.protocol_runs.STUDY_PROTOCOLS, evaluation.protocols.LODOCV_PROTOCOLS,
# models.amu.inputs.EXPRESSION_SCALES and evaluation.metrics.THRESHOLD_METHODS).
StudyProtocol = Literal["amu_holdout", "amu_holdout_leaky"]
CohortProtocol = Literal["transfer", "loco", "within", "transfer_paper"]
Expression = Literal["harmonized_expression", "expression_standardized"]
ThresholdMethod = Literal["youden", "fixed", "prevalence"]

Count = Annotated[int, Field(ge=1)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
DropoutRate = Annotated[float, Field(ge=0.0, lt=1.0)]


def _null_is_empty(value: Any) -> Any:
    """``key:`` (null) in YAML = no settings, as the nodes read it (``value or {}``)."""
    return {} if value is None else value


class Network(Config):
    """``amu.model``: the architecture (``models.amu.architecture.AmuConfig``, whose checks
    it runs, e.g. n_heads must divide d_model; n_genes = the panel's size, not a parameter)."""

    d_model: Count = _NETWORK.d_model
    n_heads: Count = _NETWORK.n_heads
    n_layers: Count = _NETWORK.n_layers
    ffn_dim: Count = _NETWORK.ffn_dim
    dropout: DropoutRate = _NETWORK.dropout
    attn_dropout: DropoutRate | None = _NETWORK.attn_dropout  # null = dropout (the original)
    conv_channels: Count = _NETWORK.conv_channels
    head_dropout: DropoutRate = _NETWORK.head_dropout

    @model_validator(mode="after")
    def _a_valid_architecture(self) -> Network:
        Architecture(**self.model_dump())
        return self


class Train(Config):
    """``amu.train`` (every key) or a setting's ``train`` (the keys it overrides): the
    recipe's settings (``models.amu.train_config.TrainConfig``, whose checks it runs)."""

    epochs: Count = _RECIPE.epochs
    batch_size: Count = _RECIPE.batch_size
    learning_rate: float = Field(_RECIPE.learning_rate, gt=0.0)
    l2: float = Field(_RECIPE.l2, ge=0.0)  # coupled L2 (Paddle L2Decay)
    lr_milestones: tuple[Fraction, ...] = _RECIPE.lr_milestones  # increasing fractions of epochs
    lr_gamma: float = _RECIPE.lr_gamma
    standardize: bool = _RECIPE.standardize
    smote: bool = _RECIPE.smote
    smote_k_neighbors: Count = _RECIPE.smote_k_neighbors
    num_threads: Count = _RECIPE.num_threads  # per worker process
    engine: Engine = _RECIPE.engine

    @model_validator(mode="after")
    def _a_valid_recipe(self) -> Train:
        TrainConfig(**self.model_dump())
        return self

    def overrides(self) -> dict[str, Any]:
        """The settings given explicitly (a setting's ``train`` overrides only those)."""
        return self.model_dump(exclude_unset=True)


class _Setting(Config):
    """What the study and cohort settings share: their features' pseudo-count and the
    overrides of ``amu.train`` (``null`` or ``{}``: none)."""

    pseudo_count: float = Field(PSEUDO_COUNT, gt=0.0)  # features = ln(ratio + pseudo_count)
    train: Train = Train()

    _train_null_is_empty = field_validator("train", mode="before")(_null_is_empty)


class Study(_Setting):
    """``amu.study``: the AMU matrix with ``amu_holdout_folds``."""

    protocols: tuple[StudyProtocol, ...] = ("amu_holdout",)
    n_trials: Count | None = None  # null (or "all"): every stored split
    test_size: Fraction = 0.2  # the leaky protocol's split of the oversampled rows

    @field_validator("n_trials", mode="before")
    @classmethod
    def _all_trials(cls, value: Any) -> Any:
        return None if value in ("null", "all") else value


class Cohorts(_Setting):
    """``amu.cohorts``: transfer / loco / within (/ transfer_paper) folds of ``lodocv_folds``."""

    protocols: tuple[CohortProtocol, ...] = ()
    # The first n_repeats K-fold repeats of each held-out cohort: null = all; an int for
    # every protocol or {protocol: int | null} (evaluation.protocols.iter_protocol_folds).
    n_repeats: Count | None | dict[CohortProtocol, Count | None] = None
    panel: str = "amu160"  # a panel of gene_panels
    expression: Expression = "harmonized_expression"


class FinalModel(Config):
    """``amu.final_model``: the deployable model's seed."""

    seed: int = 0


class Summary(Config):
    """``amu.summary``: patient-level bootstrap CIs (evaluation.summary)."""

    n_boot: Count = 1000
    seed: int = 0


class AmuConfig(Config):
    """``params:amu``: network, recipe, thresholds, parallelism and the settings."""

    model: Network = Network()
    train: Train = Train()
    threshold_method: ThresholdMethod = "youden"  # evaluation.metrics.fit_threshold
    n_jobs: Count = 1  # folds fitted in parallel worker processes (results do not depend on it)
    study: Study = Study()
    cohorts: Cohorts = Cohorts()
    final_model: FinalModel = FinalModel()
    summary: Summary = Summary()

    _blocks_null_is_empty = field_validator("model", "train", mode="before")(_null_is_empty)

    def network(self) -> dict[str, Any]:
        """The network settings ``models.amu`` completes with ``n_genes``."""
        return self.model.model_dump()

    def train_config(self, setting: Literal["study", "cohorts"]) -> TrainConfig:
        """``amu.train`` with the setting's overrides (``amu.<setting>.train``); its seed is
        ``TrainConfig``'s default, replaced by each fold's (and by ``final_model.seed``)."""
        overrides = getattr(self, setting).train.overrides()
        return TrainConfig(**{**self.train.model_dump(), **overrides})
