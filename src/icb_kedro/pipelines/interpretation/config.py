"""Typed ``params:interpretation`` (conf/base/parameters_interpretation.yml).

The report node parses the whole block; the SHAP, importance, embedding, enrichment and
survival nodes still read their sub-blocks (``params:interpretation.shap`` …) as dicts with
their own defaults (this model mirrors them), after the run-start check
(``hooks.ParametersCheckHook``) has validated the block through this model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from icb_kedro.config import Config


class ShapBudget(Config):
    """A per-model override of the KernelSHAP budget (``shap.per_model.<model>``)."""

    n_background: int | None = Field(None, ge=1)
    nsamples: int | Literal["auto"] | None = None
    l1_reg: str | bool | int | None = None
    max_explain_rows: int | None = Field(None, ge=1)


class ShapSetting(Config):
    """Which fold models are explained in a setting (``shap.study`` / ``shap.cohorts``)."""

    models: tuple[str, ...] = ()
    protocol: str | None = None  # cohorts: the protocol whose folds are explained (loco)
    n_trials: int = Field(1, ge=1)
    cohorts: tuple[str, ...] | None = None  # null = every held-out cohort
    max_explain_rows: int | None = Field(None, ge=1)  # null = every test row


class Shap(Config):
    n_background: int = Field(10, ge=1)
    nsamples: int | Literal["auto"] = 100
    l1_reg: str | bool | int = "num_features(20)"  # the explain_* modules' default; base: 30
    study: ShapSetting = ShapSetting()
    cohorts: ShapSetting = ShapSetting()
    per_model: dict[str, ShapBudget] = {}


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
