"""Typed ``params:baselines`` (conf/base/parameters_baselines.yml; conf/light and conf/paper
override some keys, soft-merged).

Defaults are what the code did when a key was absent (its ``.get(key, default)``); keys the
code required take the conf/base value. The choices mirror the code's own tuples
(``estimators.MODEL_FAMILIES`` / ``SEARCH_KINDS``, ``evaluation.protocols``,
``evaluation.metrics.THRESHOLD_METHODS``, ...; tests/pipelines/baselines/test_config.py
checks they agree): this module imports no model code, so the run-start check stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from icb_kedro.config import Config

#: Protocols of ``icb_kedro.evaluation.protocols`` (LODOCV_PROTOCOLS + AMU_PROTOCOL).
LodocvProtocol = Literal["transfer", "loco", "within", "transfer_paper"]
Protocol = Literal["transfer", "loco", "within", "transfer_paper", "amu_holdout"]
#: ``estimators.MODEL_FAMILIES``.
Family = Literal["logreg", "svm", "rf", "adaboost", "xgboost", "mlp", "cnn"]
#: ``best`` or one of ``deployment.DEPLOYABLE_FAMILIES`` (every family but the CNN).
RegistryModel = Literal["best", "logreg", "svm", "rf", "adaboost", "xgboost", "mlp"]
PositiveInt = Annotated[int, Field(ge=1)]


class GridRange(Config):
    """A search-grid entry ``{start, stop, step}`` = the candidates ``range(start, stop, step)``."""

    start: int
    stop: int
    step: int

    @model_validator(mode="after")
    def _not_empty(self) -> GridRange:
        if self.step == 0 or not range(self.start, self.stop, self.step):
            raise ValueError(f"range({self.start}, {self.stop}, {self.step}) has no candidates")
        return self


def _candidates_kind(value: Any) -> str:
    return "range" if isinstance(value, (Mapping, GridRange)) else "list"


#: A grid entry's candidates: a list, or a range (errors name the branch the value chose).
Candidates = Annotated[
    Annotated[GridRange, Tag("range")] | Annotated[list[Any], Tag("list")],
    Discriminator(_candidates_kind),
]


class ModelConfig(Config):
    """One model family (``baselines.models.<name>``): ``estimators.model_spec_from_params``.

    ``params``: fixed keyword arguments of the classifier; ``grid``: classifier parameter ->
    candidates (a list, or a range), searched by inner CV (``search``: grid = every
    combination, random = ``n_iter`` seeded draws, none = ``params`` only).
    """

    enabled: bool = True
    family: Family | None = None  # null = the entry's own name
    search: Literal["grid", "random", "none"] | None = None  # null: grid if a grid is given
    grid: dict[str, Candidates] | None = None
    n_iter: int = Field(10, ge=1)  # candidates of a random search (capped by the grid's size)
    params: dict[str, Any] | None = None
    protocols: tuple[Protocol, ...] | None = None  # null = every protocol of the run

    @model_validator(mode="after")
    def _search_has_a_grid(self) -> ModelConfig:
        if self.enabled and self.search in ("grid", "random") and not self.grid:
            raise ValueError(f"search {self.search!r} needs a non-empty grid")
        return self


class InnerCv(Config):
    """Seeded stratified K-fold of a fold's training rows (hyper-parameter search, out-of-fold
    probabilities); capped by the smaller class."""

    n_splits: int = Field(3, ge=2)


class Threshold(Config):
    """The decision threshold, fitted on training rows (``evaluation.metrics.fit_threshold``)."""

    method: Literal["youden", "fixed", "prevalence"] = "youden"
    source: Literal["oof", "in_sample"] = "oof"  # oof: out-of-fold training probabilities


class Registry(Config):
    """The deployed baseline (``icb_baseline``): ``best`` = the enabled deployable family with
    the highest mean ``selection_protocol`` AUROC over held-out cohorts, or a family."""

    model: RegistryModel = "best"
    selection_protocol: Protocol = "loco"
    seed: int = 0  # + seed_offset


class AmuHoldout(Config):
    """The AMU study setting (protocol ``amu_holdout``): the AMU matrix's log constituent
    ratios, SMOTE inside the training rows."""

    n_trials: int | None = Field(None, ge=1)  # null = every split of amu_holdout_folds
    pseudo_count: float = Field(1e-6, gt=0.0)  # features = ln(ratio + pseudo_count)
    smote: bool = False  # conf/base: true
    n_features: int | None = Field(None, ge=1)  # null = every gene (not baselines.n_features)


class Signatures(Config):
    """``baselines.signatures``: the published signatures' coverage rule and scores."""

    panel: str = "common"  # genes the coverage rule and the scores use
    min_coverage: float = Field(0.8, ge=0.0, lt=1.0)  # scored if MORE than this is present
    include_below_coverage: tuple[str, ...] | None = None  # scored even below coverage
    ssgsea_weight: float = 0.25


class BaselinesEvaluation(Config):
    """``baselines.evaluation``: patient-level bootstrap CIs and paired comparisons."""

    n_boot: int = Field(1000, ge=1)
    seed: int = 0
    reference_model: str | tuple[str, ...] | None = None  # null = every pair of models


class BaselinesConfig(Config):
    """``params:baselines``: classical models and published signatures on the shared folds."""

    panel: str = "common"  # gene panel (table gene_panels) of the model inputs
    protocols: tuple[Protocol, ...] = ("transfer", "loco", "within", "amu_holdout")
    # Repeats of lodocv_folds per held-out cohort: an int, a mapping by LODOCV protocol, or
    # null = every repeat.
    n_repeats: PositiveInt | dict[LodocvProtocol, PositiveInt | None] | None = None
    held_out: tuple[str, ...] | None = None  # null (or empty) = every held-out cohort
    seed_offset: int = 0  # model / inner-CV seed = the fold's seed + this
    n_jobs: int = 1  # folds fitted in parallel processes (joblib: -1 = every core); base: 2
    n_features: int | None = Field(None, ge=1)  # ANOVA-F genes per fold; null = all; base: 128
    transfer_search: Literal["fold", "source"] = "fold"  # base: source
    inner_cv: InnerCv = InnerCv()
    calibration: Literal["none", "platt"] = "none"  # post-hoc Platt scaling; base: platt
    threshold: Threshold = Threshold()
    registry: Registry = Registry()  # null = these defaults
    amu_holdout: AmuHoldout = AmuHoldout()
    models: dict[Family, ModelConfig] = {}
    signatures: Signatures = Signatures()
    evaluation: BaselinesEvaluation = BaselinesEvaluation()

    @field_validator("registry", mode="before")
    @classmethod
    def _null_registry(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("n_jobs")
    @classmethod
    def _some_jobs(cls, value: int) -> int:
        if value == 0:
            raise ValueError("n_jobs must be >= 1 or negative (joblib: -1 = every core), not 0")
        return value
