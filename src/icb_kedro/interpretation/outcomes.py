"""The top genes against outcomes: gene sets and enrichment, Cox per top gene against a
random-gene null, Kaplan-Meier of each model's predicted groups."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from icb_kedro.interpretation import enrichment, survival
from icb_kedro.interpretation.shap_tables import loaded, top_gene_union, top_genes

if TYPE_CHECKING:
    from icb_kedro.pipelines.interpretation.config import Enrichment, Survival

logger = logging.getLogger(__name__)


GENE_SET_COLUMNS: tuple[str, ...] = ("gene_set", "gene")


def parse_signature_sets(signature_files: Mapping[str, Any]) -> pd.DataFrame:
    """The shipped signature files as a long ``gene_set, gene`` table (metadata file skipped)."""
    texts = {name: loaded(value) for name, value in signature_files.items()}
    texts = {
        name: text.decode("utf-8") if isinstance(text, bytes) else str(text)
        for name, text in texts.items()
    }
    sets, skipped = enrichment.parse_signature_gene_sets(texts)
    logger.info(
        "interpretation: %d signature gene sets parsed; skipped metadata files %s",
        len(sets),
        skipped,
    )
    return pd.DataFrame(
        [(name, gene) for name, genes in sets.items() for gene in genes],
        columns=list(GENE_SET_COLUMNS),
    )


def gene_set_dict(gene_sets: pd.DataFrame) -> dict[str, list[str]]:
    return {name: rows["gene"].tolist() for name, rows in gene_sets.groupby("gene_set", sort=True)}


def enrich_top_genes(
    rankings: pd.DataFrame, gene_sets: pd.DataFrame, params: Enrichment
) -> pd.DataFrame:
    """ORA of each model's top-k genes (background: that model's input panel) and, per
    setting, of the union of the models' top-k genes (background: the union of their panels)."""
    k = params.top_k
    sets = gene_set_dict(gene_sets)
    queries: list[tuple[str, str, list[str], list[str]]] = []
    for setting, rows in rankings.groupby("setting", sort=True):
        models = sorted(rows["model"].unique())
        for model in models:
            mine = rows[rows["model"] == model]
            queries.append((setting, model, top_gene_union(mine, k), sorted(mine["gene"])))
        if len(models) > 1:
            queries.append((setting, "union", top_gene_union(rows, k), sorted(set(rows["gene"]))))
    columns = ["setting", "query", "top_k", *enrichment.ENRICHMENT_COLUMNS]
    parts = [
        enrichment.over_representation(query, sets, background).assign(
            setting=setting, query=name, top_k=k
        )
        for setting, name, query, background in queries
    ]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def cox_random_gene_null(
    cox: pd.DataFrame,
    expression: pd.DataFrame,
    clinical: pd.DataFrame,
    gene_panels: pd.DataFrame,
    params: Survival,
) -> pd.DataFrame:
    """The selected genes' Cox results against as many random genes of the common panel
    (``survival.random_gene_null``; settings ``interpretation.survival.random_gene_null``)."""
    settings = params.random_gene_null
    fitted = cox[cox["p_value"].notna()] if len(cox) else cox
    if fitted.empty:
        return pd.DataFrame(columns=list(survival.NULL_COLUMNS))
    pool = gene_panels.loc[gene_panels["panel"] == settings.panel, "gene"].tolist()
    return survival.random_gene_null(
        fitted,
        expression,
        clinical,
        pool,
        n_random=settings.n_genes,
        n_sets=settings.n_sets,
        alpha=settings.alpha,
        seed=settings.seed,
        penalizer=params.penalizer,
        min_events=params.min_events,
    )


def cox_top_genes(
    rankings: pd.DataFrame, expression: pd.DataFrame, clinical: pd.DataFrame, params: Survival
) -> pd.DataFrame:
    """Cohort-stratified Cox PH per top gene (union of every model's top-k) on OS and PFS.

    Expression = ``harmonized_expression`` (log2 TPM+1), z-scored within each cohort inside
    :func:`~icb_kedro.interpretation.survival.cox_per_gene`. Top genes missing from the
    cohorts' common panel (AMU study genes) are listed with a note, not dropped.
    """
    columns = [*survival.COX_COLUMNS, "models"]
    if rankings.empty:
        return pd.DataFrame(columns=columns)
    top = top_genes(rankings, params.top_k)
    models_of = (
        (top["setting"] + ":" + top["model"])
        .groupby(top["gene"])
        .apply(lambda m: ",".join(sorted(set(m))))
    )
    genes = sorted(models_of.index)
    present = [g for g in genes if g in expression.columns]
    table = survival.cox_per_gene(
        expression,
        clinical,
        present,
        endpoints=params.endpoints,
        penalizer=params.penalizer,
        min_events=params.min_events,
    )
    absent = [
        {
            "endpoint": e,
            "gene": g,
            "n": 0,
            "n_events": 0,
            "n_cohorts": 0,
            "n_excluded": 0,
            "note": "gene not measured in the cohorts",
        }
        for e in params.endpoints
        for g in genes
        if g not in present
    ]
    if absent:
        table = pd.concat([table, pd.DataFrame(absent)], ignore_index=True)
    table["models"] = table["gene"].map(models_of)
    return (
        table[columns]
        .sort_values(["endpoint", "p_value", "gene"], na_position="last", kind="mergesort")
        .reset_index(drop=True)
    )


def evaluation_is_current(
    all_predictions: pd.DataFrame | None, model_predictions: Mapping[str, pd.DataFrame | None]
) -> bool:
    """``all_predictions`` exists and holds, for every model table present, as many rows of
    that table's models as the table itself (an evaluation run after those models)."""
    if all_predictions is None or not len(all_predictions):
        return False
    counts = all_predictions["model"].value_counts()
    for table in model_predictions.values():
        if table is None or not len(table):
            continue
        if (
            not table["model"]
            .value_counts()
            .equals(counts.reindex(table["model"].value_counts().index))
        ):
            return False
    return True


def choose_predictions(
    all_predictions: pd.DataFrame | None, model_predictions: Mapping[str, pd.DataFrame | None]
) -> pd.DataFrame | None:
    """The evaluation layer's stacked predictions when they match the model tables on disk,
    else the model tables themselves (e.g. ``--pipelines baselines,interpretation`` after an
    older evaluation: its ``all_predictions`` would be stale)."""
    if evaluation_is_current(all_predictions, model_predictions):
        return all_predictions
    available = [p for p in model_predictions.values() if p is not None and len(p)]
    return pd.concat(available, ignore_index=True) if available else None


def km_by_model(
    predictions: pd.DataFrame | None, clinical: pd.DataFrame, params: Survival
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """KM of predicted responders vs non-responders for every model and endpoint.

    Protocol: the first of ``params.km_protocols`` a model has (default ``loco``: every
    labelled sample scored once by a model that never saw its cohort). Returns the summary
    table and the figures by name.
    """
    columns = [
        "model",
        "protocol",
        "endpoint",
        "n",
        "n_events",
        "n_pred_responders",
        "n_excluded",
        "median_months_responders",
        "median_months_non_responders",
        "logrank_p",
        "hr",
        "ci_low",
        "ci_high",
        "cox_p",
    ]
    if predictions is None or predictions.empty:
        return pd.DataFrame(columns=columns), {}
    rows, figures = [], {}
    for model, part in predictions.groupby("model", sort=True):
        protocol = next((p for p in params.km_protocols if p in set(part["protocol"])), None)
        if protocol is None:
            continue
        chosen = part[part["protocol"] == protocol]
        for endpoint in params.endpoints:
            summary, figure = survival.kaplan_meier_by_prediction(
                chosen, clinical, endpoint, title=f"{model} ({protocol})"
            )
            if summary["n"] == 0:
                continue
            rows.append({"model": model, "protocol": protocol, **summary})
            figures[f"km_{model}_{endpoint}"] = figure
    return pd.DataFrame(rows, columns=columns), figures


def km_summary(
    clinical: pd.DataFrame,
    params: Survival,
    all_predictions: pd.DataFrame | None = None,
    *model_predictions: pd.DataFrame | None,
) -> pd.DataFrame:
    """The KM summary table (the report draws the curves from the same inputs)."""
    chosen = choose_predictions(all_predictions, dict(enumerate(model_predictions)))
    table, _ = km_by_model(chosen, clinical, params)
    return table
