"""Typed ``params:interpretation`` (conf/base/parameters_interpretation.yml).

Every interpretation node parses its sub-block with the model below at its boundary
(``pipelines/interpretation/nodes.py``: ``Shap.of(params, "params:interpretation.shap")``,
``Survival.of(...)`` …; the report node the whole block) and hands the typed object to the
algorithm code in ``icb_kedro.interpretation``, which reads no parameter dict. The defaults
live here only; the run-start check (``hooks.ParametersCheckHook``) parses the whole block
through :class:`InterpretationConfig`, so a typo fails before any model is refitted.

``shap.nsamples`` (shared or ``per_model``) may be ``auto`` for every model: the three
KernelSHAP explainers (SVM, AMU, IC2Bert) hand it to ``shap_analysis.kernel_shap_values``,
which resolves it to shap's own budget (2 x explained genes + 2048); XGBoost's TreeSHAP is
exact and uses no budget.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from icb_kedro.config import Config

SHAP_SETTINGS: tuple[str, ...] = ("study", "cohorts")
# The cohorts-setting models explained on the folds of ``shap.cohorts.protocol``; IC2Bert is
# explained on the fold its fine-tuned bundle names (protocol and trial in its metadata).
PROTOCOL_MODELS: frozenset[str] = frozenset({"svm", "xgboost", "amu"})


class ShapBudget(Config):
    """A per-model override of the KernelSHAP budget (``shap.per_model.<model>``): the keys
    given replace the shared / setting values for that model, the others are inherited."""

    n_background: int | None = Field(None, ge=1)
    nsamples: int | Literal["auto"] | None = None
    l1_reg: str | bool | int | None = None
    max_explain_rows: int | None = Field(None, ge=1)  # null (given) = every test row

    @model_validator(mode="after")
    def _no_null_budget(self) -> Self:
        given_null = [
            name
            for name in ("n_background", "nsamples", "l1_reg")
            if name in self.model_fields_set and getattr(self, name) is None
        ]
        if given_null:
            raise ValueError(
                f"{', '.join(given_null)}: null overrides nothing; leave the key out to "
                "inherit the shared shap value"
            )
        return self


class ShapSetting(Config):
    """Which fold models are explained in a setting (``shap.study`` / ``shap.cohorts``)."""

    models: tuple[str, ...] = ()
    protocol: str | None = None  # cohorts: the protocol whose folds are explained (loco)
    n_trials: int = Field(1, ge=1)
    cohorts: tuple[str, ...] | None = None  # null = every held-out cohort
    max_explain_rows: int | None = Field(None, ge=1)  # null = every test row


class ShapRun(Config):
    """What one explainer runs with (:meth:`Shap.run`): the shared KernelSHAP budget, one
    setting's block, then the model's ``per_model`` override."""

    n_background: int = Field(ge=1)
    # "auto": shap's own budget, 2 x explained genes + 2048 coalitions
    # (interpretation.shap_analysis.kernel_shap_values; every KernelSHAP model: SVM, AMU,
    # IC2Bert). TreeSHAP (XGBoost) is exact and ignores nsamples, n_background and l1_reg.
    nsamples: int | Literal["auto"]
    l1_reg: str | bool | int
    models: tuple[str, ...]
    protocol: str | None
    n_trials: int = Field(ge=1)
    cohorts: tuple[str, ...] | None
    max_explain_rows: int | None = Field(ge=1)


class Shap(Config):
    """``shap``: the shared KernelSHAP budget, the two settings and per-model overrides;
    :meth:`run` merges them for one explainer."""

    n_background: int = Field(10, ge=1)
    nsamples: int | Literal["auto"] = 100
    l1_reg: str | bool | int = "num_features(20)"  # base: num_features(30)
    study: ShapSetting = ShapSetting()
    cohorts: ShapSetting = ShapSetting()
    per_model: dict[str, ShapBudget] = {}

    @model_validator(mode="after")
    def _cohorts_protocol_named(self) -> Self:
        needing = sorted(PROTOCOL_MODELS & set(self.cohorts.models))
        if needing and self.cohorts.protocol is None:
            raise ValueError(
                f"cohorts.protocol is not set: the cohorts setting explains {needing} on the "
                "folds of that protocol (e.g. loco)"
            )
        return self

    def run(self, setting: str, model: str | None = None) -> ShapRun:
        """The settings of ``model`` in ``setting`` (``study`` / ``cohorts``): the shared
        values, updated with the setting's block, then with the keys ``per_model.<model>``
        gives."""
        if setting not in SHAP_SETTINGS:
            raise ValueError(f"unknown SHAP setting {setting!r}; expected one of {SHAP_SETTINGS}")
        values = {
            "n_background": self.n_background,
            "nsamples": self.nsamples,
            "l1_reg": self.l1_reg,
            **dict(getattr(self, setting)),
        }
        budget = self.per_model.get(model) if model is not None else None
        if budget is not None:
            values.update({name: getattr(budget, name) for name in budget.model_fields_set})
        return ShapRun(**values)


class Ic2bertImportance(Config):
    expression: str = "expression_standardized"
    n_repeats: int = Field(1, ge=1)
    permutation_genes: int | None = Field(None, ge=1)  # null = every gene
    attention_weight: float = Field(0.4, ge=0.0)
    permutation_weight: float = Field(0.6, ge=0.0)
    top_k: tuple[int, ...] = (100, 50, 30, 10)


class Rankings(Config):
    top_k: tuple[int, ...] = (10, 50)
    stability_k: int = Field(20, ge=1)
    stability_n_boot: int = Field(200, ge=1)
    seed: int = 0


class Embeddings(Config):
    fold: str = "amu_holdout|AMU|0"
    n_clusters: int = Field(8, ge=2)
    perplexity: float = Field(15, gt=0)
    n_neighbours: int = Field(3, ge=1)
    n_permutations: int = Field(2000, ge=1)
    seed: int = 0


class Enrichment(Config):
    top_k: int = Field(50, ge=1)


class RandomGeneNull(Config):
    panel: str = "common"
    n_genes: int = Field(40, ge=1)
    n_sets: int = Field(1000, ge=1)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)
    seed: int = 0


class Survival(Config):
    top_k: int = Field(10, ge=1)
    endpoints: tuple[str, ...] = ("os", "pfs")
    min_events: int = Field(5, ge=1)
    penalizer: float = Field(0.0, ge=0.0)
    km_protocols: tuple[str, ...] = ("loco", "amu_holdout", "transfer", "within")
    random_gene_null: RandomGeneNull = RandomGeneNull()  # absent: run with these defaults


class FallbackEvaluation(Config):
    """Bootstrap of the summaries the report computes itself when the evaluation pipeline's
    are missing."""

    n_boot: int = Field(1000, ge=1)
    seed: int = 0


class Report(Config):
    title: str = "ICB response: which genes drive the predictions, and do they matter for survival"
    top_k: int = Field(10, ge=1)
    dpi: int = Field(110, ge=20)


class InterpretationConfig(Config):
    """``params:interpretation``."""

    shap: Shap = Shap()
    ic2bert: Ic2bertImportance = Ic2bertImportance()
    rankings: Rankings = Rankings()
    embeddings: Embeddings = Embeddings()
    enrichment: Enrichment = Enrichment()
    survival: Survival = Survival()
    evaluation: FallbackEvaluation = FallbackEvaluation()
    report: Report = Report()


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"interpretation": InterpretationConfig}
