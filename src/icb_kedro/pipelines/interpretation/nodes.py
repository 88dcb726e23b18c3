"""interpretation pipeline nodes: thin wrappers around ``icb_kedro.interpretation``.

Leak-free by construction: every attribution is computed on the TEST rows of a stored
fold (``lodocv_folds`` / ``amu_holdout_folds``), with a model fitted on that fold's
training rows only and a SHAP background drawn from those training rows.

Inputs produced by other pipelines arrive through ``OptionalDataset`` mirrors (see
``conf/base/catalog_interpretation.yml``) and may be ``None``: the analysis that needs
them is then listed as "not run" in the report instead of failing the run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import iter_protocol_folds
from icb_kedro.interpretation import enrichment, shap_analysis, survival
from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY

logger = logging.getLogger(__name__)

# Columns of the per-model SHAP tables (``interpretation_shap_<model>``): one row per
# explained test sample and kind ("shap" = SHAP values, "feature" = the model's input
# values of that row, for beeswarm colours), then one column per gene.
SHAP_META_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "cohort",
    "trial",
    SAMPLE_KEY,
    "y_true",
    "kind",
)
RANKING_COLUMNS: tuple[str, ...] = (
    "setting",
    "protocol",
    "model",
    "gene",
    "mean_abs_shap",
    "mean_shap",
    "direction",
    "rank",
    "n_rows",
)
GENE_SET_COLUMNS: tuple[str, ...] = ("gene_set", "gene")


# ----------------------------------------------------------------------------- helpers


def _loaded(value: Any) -> Any:
    """A PartitionedDataset entry is a load callable; everything else is the value itself."""
    return value() if callable(value) else value


def shap_gene_columns(table: pd.DataFrame) -> list[str]:
    """Gene columns of a SHAP table (every column that is not metadata)."""
    return [c for c in table.columns if c not in SHAP_META_COLUMNS]


def explain_rows(
    test_keys: Sequence[str], labels: pd.Series, max_rows: int | None, seed: int
) -> list[str]:
    """A seeded, class-stratified subsample of a fold's test keys (all of them if few).

    KernelSHAP costs ~ rows x nsamples x background model calls, so the number of explained
    rows is capped; stratifying keeps responders among them.
    """
    keys = sorted(test_keys)
    if max_rows is None or len(keys) <= max_rows:
        return keys
    from sklearn.model_selection import train_test_split

    y = labels.loc[keys].astype(int).to_numpy()
    # Stratify only where both sides can hold both classes (a 5-row split leaves 1 row out).
    stratify = (
        y
        if min(np.bincount(y, minlength=2)) >= 2
        and len(keys) - int(max_rows) >= 2
        and int(max_rows) >= 2
        else None
    )
    chosen, _ = train_test_split(
        keys, train_size=int(max_rows), stratify=stratify, random_state=seed
    )
    return sorted(chosen)


def _shap_frame(
    model: str,
    protocol: str,
    cohort: str,
    trial: int,
    keys: Sequence[str],
    y_true: np.ndarray,
    values: np.ndarray,
    features: np.ndarray,
    genes: Sequence[str],
) -> pd.DataFrame:
    parts = []
    for kind, matrix in (("shap", values), ("feature", features)):
        meta = pd.DataFrame(
            {
                "model": model,
                "protocol": protocol,
                "cohort": cohort,
                "trial": int(trial),
                SAMPLE_KEY: list(keys),
                "y_true": np.asarray(y_true, dtype=np.int8),
                "kind": kind,
            }
        )
        parts.append(
            pd.concat(
                [meta, pd.DataFrame(np.asarray(matrix, dtype=float), columns=list(genes))], axis=1
            )
        )
    return pd.concat(parts, ignore_index=True)


def empty_shap_table(genes: Sequence[str] = ()) -> pd.DataFrame:
    return pd.DataFrame(columns=[*SHAP_META_COLUMNS, *genes])


# ----------------------------------------------------------------------------- gene sets


def parse_signature_sets(signature_files: Mapping[str, Any]) -> pd.DataFrame:
    """The shipped signature files as a long ``gene_set, gene`` table (metadata file skipped)."""
    texts = {name: _loaded(value) for name, value in signature_files.items()}
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


# ----------------------------------------------------------------------------- baselines SHAP


def _baseline_features(
    expression: pd.DataFrame, gene_panels: pd.DataFrame, panel: str
) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    # The same panel selection (and checks) as the baselines pipeline the models came from.
    from icb_kedro.pipelines.baselines.nodes import select_panel_features

    selected = select_panel_features(expression, gene_panels, panel)
    genes = [c for c in selected.columns if c not in (SAMPLE_KEY, COHORT, LABEL)]
    indexed = selected.set_index(SAMPLE_KEY)
    return indexed[genes], indexed[LABEL], genes


def _logged_best_params(
    search_log: pd.DataFrame | None, model: str, protocol: str, cohort: str, trial: int
) -> dict | None:
    """The hyper-parameters the baselines pipeline chose for this fold, if it logged them."""
    if search_log is None or search_log.empty:
        return None
    import json

    rows = search_log[
        (search_log["model"] == model)
        & (search_log["protocol"] == protocol)
        & (search_log["cohort"] == cohort)
        & (search_log["trial"] == trial)
    ]
    return json.loads(rows["best_params"].iloc[0]) if len(rows) else None


SETTINGS: tuple[str, ...] = ("study", "cohorts")


def setting_params(
    shap_params: dict[str, Any], setting: str, model: str | None = None
) -> dict[str, Any]:
    """The shared SHAP settings, updated with one setting's block (``study`` / ``cohorts``)
    and then with the model's block under ``per_model`` (KernelSHAP sizes of slow models)."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown SHAP setting {setting!r}; expected one of {SETTINGS}")
    common = {k: v for k, v in shap_params.items() if k not in (*SETTINGS, "per_model")}
    merged = {**common, **(shap_params.get(setting) or {})}
    if model is not None:
        merged.update((shap_params.get("per_model") or {}).get(model) or {})
    return merged


def _tree_shap_through_pipeline(
    pipeline: Any, x_rows: np.ndarray, classifier_step: str
) -> np.ndarray:
    """TreeSHAP of a ``scale -> [select] -> [smote] -> classifier`` pipeline, per input gene.

    The scaler is a per-gene monotone map, so the classifier's attributions on scaled
    inputs are the pipeline's; genes dropped by the fitted ``select`` step cannot change
    the prediction and get exactly 0. SMOTE only acts while fitting.
    """
    steps = pipeline.named_steps
    x = steps["scale"].transform(x_rows) if "scale" in steps else np.asarray(x_rows, dtype=float)
    kept = np.arange(x.shape[1])
    support = _selected_gene_mask(pipeline)
    if support is not None:
        x, kept = x[:, support], np.flatnonzero(support)
    values = np.zeros((len(x_rows), np.asarray(x_rows).shape[1]))
    values[:, kept] = shap_analysis.tree_shap_values(steps[classifier_step], x)
    return values


def _selected_gene_mask(estimator: Any) -> np.ndarray | None:
    """The fitted ``select`` step's support of a baseline pipeline (or of the pipeline inside
    a Platt-calibrated SVM); None when every gene is used."""
    pipeline = (
        estimator.calibrated_classifiers_[0].estimator
        if hasattr(estimator, "calibrated_classifiers_")
        else estimator
    )
    steps = getattr(pipeline, "named_steps", {})
    return steps["select"].get_support() if "select" in steps else None


def _kernel_shap_over_selected_genes(
    estimator: Any, x_train: np.ndarray, x_rows: np.ndarray, settings: dict[str, Any], seed: int
) -> np.ndarray:
    """KernelSHAP of a fitted baseline over the genes its ``select`` step kept (e.g. 128 of
    1,719), exactly 0 for the others.

    A dropped gene cannot change the prediction, so pinning it at its training mean leaves
    the function unchanged while KernelSHAP's coalitions cover ~13x fewer genes: at the
    same budget the attributions are far less noisy (its default budget, 2M + 2048 samples,
    is affordable for M = 128, not for 1,719).
    """
    kept = _selected_gene_mask(estimator)
    kept = np.ones(x_train.shape[1], dtype=bool) if kept is None else kept
    filler = x_train.mean(axis=0)

    def predict_kept(x_kept: np.ndarray) -> np.ndarray:
        full = np.repeat(filler[None, :], len(x_kept), axis=0)
        full[:, kept] = x_kept
        return estimator.predict_proba(full)[:, 1]

    values = np.zeros(x_rows.shape)
    values[:, kept] = shap_analysis.kernel_shap_values(
        predict_kept,
        x_train[:, kept],
        x_rows[:, kept],
        n_background=int(settings["n_background"]),
        nsamples=settings["nsamples"],
        l1_reg=settings.get("l1_reg", "num_features(20)"),
        seed=seed,
    )
    return values


def explain_baseline(
    model: str,
    setting: str,
    expression: pd.DataFrame,
    gene_panels: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    search_log: pd.DataFrame | None,
    baselines_params: dict[str, Any],
    shap_params: dict[str, Any],
) -> pd.DataFrame:
    """SHAP values of one baseline (``svm`` / ``xgboost``) on the test rows of its folds.

    ``setting`` ``cohorts``: the LODOCV folds of ``shap.cohorts.protocol`` on the baselines'
    panel of ``expression_standardized``; ``study``: the ``amu_holdout`` folds of the AMU
    matrix (log ratios, SMOTE inside training rows), the AMU paper's setting.

    The model of each fold is refitted exactly as the baselines pipeline fits it (same
    spec, seed, gene selection and training rows through ``fit_predict_fold``); when the
    baselines search log is available the logged hyper-parameters are reused
    (``fixed_params``) instead of repeating the search (same model, much less time). Tree
    models use TreeSHAP through the fitted pipeline (:func:`_tree_shap_through_pipeline`);
    other models use KernelSHAP on the whole pipeline's ``predict_proba``.
    """
    from icb_kedro.evaluation.protocols import iter_amu_holdout_folds
    from icb_kedro.models.baselines.estimators import (
        CLASSIFIER_STEP,
        fit_predict_fold,
        log_ratio_features,
        model_spec_from_params,
    )

    settings = setting_params(shap_params, setting, model)
    model_params = baselines_params["models"].get(model)
    if model_params is None:
        raise ValueError(
            f"baselines.models has no entry {model!r}; it has {sorted(baselines_params['models'])}"
        )
    if setting == "study":
        genes = [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL)]
        pseudo_count = float(baselines_params["amu_holdout"]["pseudo_count"])
        features = pd.DataFrame(
            log_ratio_features(amu_matrix[genes].to_numpy(float), pseudo_count),
            index=amu_matrix[SAMPLE_KEY].to_numpy(),
            columns=genes,
        )
        labels = amu_matrix.set_index(SAMPLE_KEY)[LABEL]
        folds = iter_amu_holdout_folds(amu_holdout_folds, settings.get("n_trials", 1))
        smote = bool(baselines_params["amu_holdout"].get("smote", False))
        n_features = baselines_params["amu_holdout"].get(
            "n_features"
        )  # as the baselines pipeline: all 160
    else:
        features, labels, genes = _baseline_features(
            expression, gene_panels, baselines_params["panel"]
        )
        folds = iter_protocol_folds(
            lodocv_folds, [settings["protocol"]], 1, max_trials=settings.get("n_trials", 1)
        )
        smote = False
        n_features = baselines_params.get("n_features")
    if model not in settings.get("models", []):
        return empty_shap_table(genes)
    wanted = settings.get("cohorts")
    parts = []
    for fold in folds:
        if wanted and fold.held_out not in wanted:
            continue
        seed = int(fold.seed) + int(baselines_params.get("seed_offset", 0))
        spec = model_spec_from_params(model, model_params)
        logged = _logged_best_params(search_log, model, fold.protocol, fold.held_out, fold.trial)
        x_train = features.loc[fold.train_keys].to_numpy(float)
        y_train = labels.loc[fold.train_keys].astype(int).to_numpy()
        rows = explain_rows(fold.test_keys, labels, settings.get("max_explain_rows"), seed)
        x_rows = features.loc[rows].to_numpy(float)
        fit = fit_predict_fold(
            spec,
            x_train,
            y_train,
            x_rows,
            seed=seed,
            smote=smote,
            fixed_params=logged,
            n_features=n_features,
            inner_splits=int(baselines_params["inner_cv"]["n_splits"]),
            n_jobs=int(baselines_params.get("n_jobs", 1)),
            # The threshold is not used here: in-sample skips the out-of-fold refits.
            threshold_method=baselines_params["threshold"]["method"],
            threshold_source="in_sample",
        )
        estimator = fit.estimator
        if spec.family == "xgboost":
            values = _tree_shap_through_pipeline(estimator, x_rows, CLASSIFIER_STEP)
        else:
            values = _kernel_shap_over_selected_genes(estimator, x_train, x_rows, settings, seed)
        parts.append(
            _shap_frame(
                model,
                fold.protocol,
                fold.held_out,
                fold.trial,
                rows,
                labels.loc[rows].to_numpy(int),
                values,
                x_rows,
                genes,
            )
        )
        logger.info(
            "interpretation: SHAP %s %s/%s: %d test rows explained (%s hyper-parameters)",
            model,
            fold.protocol,
            fold.held_out,
            len(rows),
            "logged" if logged is not None else "searched",
        )
    return pd.concat(parts, ignore_index=True) if parts else empty_shap_table(genes)


# ----------------------------------------------------------------------------- rankings


def setting_of(protocol: str) -> str:
    """``study`` for the AMU matrix protocols, ``cohorts`` for the cohorts' protocols."""
    return "study" if str(protocol).startswith("amu_holdout") else "cohorts"


def _explained(shap_tables, warn: bool = True):
    """Per (protocol, model) of the SHAP tables: the SHAP and feature rows (same order), the
    genes attributed in every row and the SHAP matrix; models whose predictions were constant
    on the explained rows (all SHAP values 0) are skipped (with a warning if ``warn``)."""
    for table in shap_tables:
        if table is None or table.empty:
            continue
        genes = shap_gene_columns(table)
        for (protocol, model), part in table.groupby(["protocol", "model"], sort=True):
            order = ["cohort", "trial", SAMPLE_KEY]
            shap_rows = part[part["kind"] == "shap"].sort_values(order, kind="mergesort")
            feature_rows = part[part["kind"] == "feature"].sort_values(order, kind="mergesort")
            present = [g for g in genes if shap_rows[g].notna().all()]
            values = shap_rows[present].to_numpy(float)
            if not np.abs(values).max() > 0:  # constant predictions: no gene matters, no ranking
                if warn:
                    logger.warning(
                        "interpretation: %s (%s) predicts a constant on the explained rows; all SHAP values are 0",
                        model,
                        protocol,
                    )
                continue
            yield protocol, model, shap_rows, feature_rows, present, values


def rank_genes(*shap_tables: pd.DataFrame | None) -> pd.DataFrame:
    """Per (protocol, model), genes ranked by mean |SHAP| over every explained test row."""
    rows = []
    for protocol, model, shap_rows, feature_rows, present, values in _explained(shap_tables):
        ranking = shap_analysis.shap_gene_ranking(
            values, present, feature_rows[present].to_numpy(float)
        )
        rows.append(
            ranking.assign(
                setting=setting_of(protocol), protocol=protocol, model=model, n_rows=len(shap_rows)
            )
        )
    if not rows:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    return pd.concat(rows, ignore_index=True)[list(RANKING_COLUMNS)]


def shap_stability(*shap_tables_and_params) -> pd.DataFrame:
    """Per (protocol, model): how stable each gene's top-k place is (``shap_analysis.top_k_stability``:
    bootstrap of the explained rows within folds, and agreement between folds)."""
    *shap_tables, params = shap_tables_and_params
    k, n_boot, seed = (
        int(params.get("stability_k", 20)),
        int(params.get("stability_n_boot", 200)),
        int(params.get("seed", 0)),
    )
    rows = []
    for protocol, model, shap_rows, _, present, values in _explained(
        shap_tables, warn=False
    ):  # rank_genes warns
        folds = (shap_rows["cohort"].astype(str) + "|" + shap_rows["trial"].astype(str)).to_numpy()
        stability = shap_analysis.top_k_stability(
            values, present, folds, k=k, n_boot=n_boot, seed=seed
        )
        rows.append(stability.assign(setting=setting_of(protocol), protocol=protocol, model=model))
    columns = ["setting", "protocol", "model", *shap_analysis.STABILITY_COLUMNS]
    if not rows:
        return pd.DataFrame(columns=columns)
    return pd.concat(rows, ignore_index=True)[columns]


def top_gene_overlap(rankings: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Per setting and k in ``params.top_k``: genes in any model's top-k and how many models list them."""
    columns = ["setting", "k", "n_models_compared", "gene", "n_models", "models", "in_all"]
    parts = []
    for setting, rows in rankings.groupby("setting", sort=True):
        by_model = {model: part for model, part in rows.groupby("model", sort=True)}
        for k in params["top_k"]:
            table = shap_analysis.top_gene_overlap(by_model, int(k))
            parts.append(table.assign(setting=setting, k=int(k), n_models_compared=len(by_model)))
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


# ----------------------------------------------------------------------------- enrichment


def _top(rankings: pd.DataFrame, k: int) -> pd.DataFrame:
    """Rows of each model's top-k genes with a non-zero attribution."""
    return rankings[(rankings["rank"] <= k) & (rankings["mean_abs_shap"] > 0)]


def _top_union(rankings: pd.DataFrame, k: int) -> list[str]:
    return sorted(set(_top(rankings, k)["gene"]))


def enrich_top_genes(
    rankings: pd.DataFrame, gene_sets: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """ORA of each model's top-k genes (background: that model's input panel) and, per
    setting, of the union of the models' top-k genes (background: the union of their panels)."""
    k = int(params["top_k"])
    sets = gene_set_dict(gene_sets)
    queries: list[tuple[str, str, list[str], list[str]]] = []
    for setting, rows in rankings.groupby("setting", sort=True):
        models = sorted(rows["model"].unique())
        for model in models:
            mine = rows[rows["model"] == model]
            queries.append((setting, model, _top_union(mine, k), sorted(mine["gene"])))
        if len(models) > 1:
            queries.append((setting, "union", _top_union(rows, k), sorted(set(rows["gene"]))))
    columns = ["setting", "query", "top_k", *enrichment.ENRICHMENT_COLUMNS]
    parts = [
        enrichment.over_representation(query, sets, background).assign(
            setting=setting, query=name, top_k=k
        )
        for setting, name, query, background in queries
    ]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


# ----------------------------------------------------------------------------- survival


def cox_random_gene_null(
    cox: pd.DataFrame,
    expression: pd.DataFrame,
    clinical: pd.DataFrame,
    gene_panels: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """The selected genes' Cox results against as many random genes of the common panel
    (``survival.random_gene_null``; settings ``interpretation.survival.random_gene_null``)."""
    settings = params.get("random_gene_null") or {}
    fitted = cox[cox["p_value"].notna()] if len(cox) else cox
    if fitted.empty:
        return pd.DataFrame(columns=list(survival.NULL_COLUMNS))
    pool = gene_panels.loc[gene_panels["panel"] == settings.get("panel", "common"), "gene"].tolist()
    return survival.random_gene_null(
        fitted,
        expression,
        clinical,
        pool,
        n_random=int(settings.get("n_genes", 40)),
        n_sets=int(settings.get("n_sets", 1000)),
        alpha=float(settings.get("alpha", 0.05)),
        seed=int(settings.get("seed", 0)),
        penalizer=float(params.get("penalizer", 0.0)),
        min_events=int(params.get("min_events", 5)),
    )


def cox_top_genes(
    rankings: pd.DataFrame, expression: pd.DataFrame, clinical: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Cohort-stratified Cox PH per top gene (union of every model's top-k) on OS and PFS.

    Expression = ``harmonized_expression`` (log2 TPM+1), z-scored within each cohort inside
    :func:`~icb_kedro.interpretation.survival.cox_per_gene`. Top genes missing from the
    cohorts' common panel (AMU study genes) are listed with a note, not dropped.
    """
    columns = [*survival.COX_COLUMNS, "models"]
    if rankings.empty:
        return pd.DataFrame(columns=columns)
    k = int(params["top_k"])
    top = _top(rankings, k)
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
        endpoints=params["endpoints"],
        penalizer=float(params.get("penalizer", 0.0)),
        min_events=int(params.get("min_events", 5)),
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
        for e in params["endpoints"]
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


def choose_predictions(
    all_predictions: pd.DataFrame | None, model_predictions: Mapping[str, pd.DataFrame | None]
) -> pd.DataFrame | None:
    """The evaluation layer's stacked predictions, else whatever model tables exist."""
    if all_predictions is not None and len(all_predictions):
        return all_predictions
    available = [p for p in model_predictions.values() if p is not None and len(p)]
    return pd.concat(available, ignore_index=True) if available else None


def km_by_model(
    predictions: pd.DataFrame | None, clinical: pd.DataFrame, params: dict[str, Any]
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
        protocol = next((p for p in params["km_protocols"] if p in set(part["protocol"])), None)
        if protocol is None:
            continue
        chosen = part[part["protocol"] == protocol]
        for endpoint in params["endpoints"]:
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
    params: dict[str, Any],
    all_predictions: pd.DataFrame | None = None,
    *model_predictions: pd.DataFrame | None,
) -> pd.DataFrame:
    """Node: the KM summary table (the report draws the curves from the same inputs)."""
    chosen = choose_predictions(all_predictions, dict(enumerate(model_predictions)))
    table, _ = km_by_model(chosen, clinical, params)
    return table


# ----------------------------------------------------------------------------- AMU


def _amu_fitted(weights: Mapping[str, Any] | None, fold_id: str) -> Any | None:
    """The FittedNetwork of one fold from an ``amu_weights_*`` dict (None if absent)."""
    if not weights or fold_id not in weights:
        return None
    from icb_kedro.models.amu.train import FittedNetwork

    return FittedNetwork.from_mapping(weights[fold_id])


def _amu_kernel_shap(
    fitted: Any, x_train: np.ndarray, x_rows: np.ndarray, shap_params: dict[str, Any], seed: int
) -> np.ndarray:
    from icb_kedro.models.amu.train import load_network, predict_proba

    # The engine it was trained with (fused: ~7x faster inference, same outputs to 1e-5).
    network = load_network(fitted, fitted.engine)
    return shap_analysis.kernel_shap_values(
        # 256 rows a batch: one [batch, 10 heads, genes, genes] attention tensor at 4096 rows
        # and 160 genes is ~4 GB with the eager engine, which a larger nsamples would reach.
        lambda x: predict_proba(fitted, x, batch_size=256, network=network),
        x_train,
        x_rows,
        n_background=int(shap_params["n_background"]),
        nsamples=int(shap_params["nsamples"]),
        l1_reg=shap_params.get("l1_reg", "num_features(20)"),
        seed=seed,
    )


def explain_amu_study(
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    weights: Mapping[str, Any] | None,
    amu_params: dict[str, Any],
    shap_params: dict[str, Any],
) -> pd.DataFrame:
    """KernelSHAP of the AMU networks of the study setting (the AMU paper's 160 genes).


    Uses the fitted networks the amu pipeline persisted per ``amu_holdout`` fold (trained
    on that fold's training rows); test rows of the same fold are explained.
    """
    from icb_kedro.evaluation.protocols import iter_amu_holdout_folds
    from icb_kedro.models.amu.features import SCALE_RATIO, amu_features

    genes = [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL)]
    shap_params = setting_params(shap_params, "study", "amu")
    if weights is None or "amu" not in shap_params.get("models", []):
        return empty_shap_table(genes)
    values = amu_features(
        amu_matrix, genes, SCALE_RATIO, float(amu_params["study"].get("pseudo_count", 1e-6))
    )
    features = pd.DataFrame(values, index=amu_matrix[SAMPLE_KEY].to_numpy(), columns=genes)
    labels = amu_matrix.set_index(SAMPLE_KEY)[LABEL]
    parts = []
    for fold in iter_amu_holdout_folds(amu_holdout_folds, shap_params.get("n_trials", 1)):
        fitted = _amu_fitted(weights, f"{fold.protocol}|{fold.held_out}|{fold.trial}")
        if fitted is None:
            logger.warning(
                "interpretation: no AMU network persisted for study fold %s/%s",
                fold.held_out,
                fold.trial,
            )
            continue
        if list(fitted.features) != genes:
            raise ValueError(
                "the persisted AMU study network was trained on other genes than amu_matrix's columns"
            )
        rows = explain_rows(fold.test_keys, labels, shap_params.get("max_explain_rows"), fold.seed)
        shap_values = _amu_kernel_shap(
            fitted,
            features.loc[fold.train_keys].to_numpy(),
            features.loc[rows].to_numpy(),
            shap_params,
            fold.seed,
        )
        parts.append(
            _shap_frame(
                "amu",
                fold.protocol,
                fold.held_out,
                fold.trial,
                rows,
                labels.loc[rows].to_numpy(int),
                shap_values,
                features.loc[rows].to_numpy(),
                genes,
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else empty_shap_table(genes)


def explain_amu_cohorts(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_params: dict[str, Any],
    shap_params: dict[str, Any],
    *weights: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """KernelSHAP of the AMU networks fitted per LODOCV fold (``amu_weights_fold_*``, one
    ``{fold id: network dict}`` per held-out cohort; ``None`` for a cohort not run)."""
    from icb_kedro.models.amu.features import amu_features

    shap_params = setting_params(shap_params, "cohorts", "amu")
    networks: dict[str, Any] = {}
    for per_cohort in weights:
        networks.update(per_cohort or {})
    if not networks or "amu" not in shap_params.get("models", []):
        return empty_shap_table()
    cohorts = amu_params["cohorts"]
    source = cohorts.get("expression", "harmonized_expression")
    table = harmonized_expression if source == "harmonized_expression" else expression_standardized
    scale = {"harmonized_expression": "log2_tpm1", "expression_standardized": "zscore"}[source]
    labels = table.set_index(SAMPLE_KEY)[LABEL]
    protocol, wanted = shap_params["protocol"], shap_params.get("cohorts")
    parts, genes = [], []
    for fold in iter_protocol_folds(
        lodocv_folds, [protocol], 1, max_trials=shap_params.get("n_trials", 1)
    ):
        if wanted and fold.held_out not in wanted:
            continue
        fitted = _amu_fitted(networks, f"{fold.protocol}|{fold.held_out}|{fold.trial}")
        if fitted is None:
            continue
        genes = list(fitted.features)
        # AMU's missing-gene policy (amu nodes): cohorts lacking panel genes were left out.
        measured = table[genes].notna().all(axis=1).to_numpy()
        features = pd.DataFrame(
            amu_features(table[measured], genes, scale, float(cohorts.get("pseudo_count", 1e-6))),
            index=table.loc[measured, SAMPLE_KEY].to_numpy(),
            columns=genes,
        )
        train_keys = [k for k in fold.train_keys if k in features.index]
        rows = explain_rows(
            [k for k in fold.test_keys if k in features.index],
            labels,
            shap_params.get("max_explain_rows"),
            fold.seed,
        )
        shap_values = _amu_kernel_shap(
            fitted,
            features.loc[train_keys].to_numpy(),
            features.loc[rows].to_numpy(),
            shap_params,
            fold.seed,
        )
        parts.append(
            _shap_frame(
                "amu",
                fold.protocol,
                fold.held_out,
                fold.trial,
                rows,
                labels.loc[rows].to_numpy(int),
                shap_values,
                features.loc[rows].to_numpy(),
                genes,
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else empty_shap_table(genes)


def amu_embedding_table(
    weights: Mapping[str, Any] | None, gene_embeddings: pd.DataFrame | None, params: dict[str, Any]
) -> pd.DataFrame | None:
    """The gene embedding to analyse: the study fold network's 160 x 20 table (trained on
    that fold's training rows, the AMU paper's setting) if persisted, else the exported
    ``amu_gene_embeddings`` of the final cohort model. Indexed by gene."""
    fitted = _amu_fitted(weights, params.get("fold", "amu_holdout|AMU|0"))
    if fitted is not None:
        return pd.DataFrame(fitted.gene_embeddings(), index=list(fitted.features))
    if gene_embeddings is not None and len(gene_embeddings):
        return gene_embeddings.set_index("gene")
    return None


def amu_initial_embedding_table(
    weights: Mapping[str, Any] | None, params: dict[str, Any]
) -> pd.DataFrame | None:
    """The table the analysed study fold network was initialised with (same seed and config,
    rebuilt exactly); None when the embedding analysed is an exported table (no seed)."""
    from icb_kedro.interpretation.embeddings import initial_embedding

    fitted = _amu_fitted(weights, params.get("fold", "amu_holdout|AMU|0"))
    return initial_embedding(fitted) if fitted is not None else None


def analyse_amu_embeddings(
    weights: Mapping[str, Any] | None,
    gene_embeddings: pd.DataFrame | None,
    amu_matrix: pd.DataFrame,
    gene_sets: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Gene map (t-SNE + cluster), neighbour pairs with co-expression / co-membership,
    the permutation-test summary, and the cosine-similarity and Euclidean-distance matrices
    (long form: ``gene, other, cosine_similarity, euclidean_distance``).

    The summary also holds the null comparison with the initialisation: the same statistics
    (same permutations) of the table the network started from, rows ``embedding ==
    "initial"``, and the drift ||E - E0||_F / ||E0||_F (``relative_drift``), so a map that
    mostly shows the random seed is visible as such. An exported embedding (no seed) has
    only ``trained`` rows, with NaN drift."""
    from icb_kedro.interpretation import embeddings

    empty = pd.DataFrame()
    table = amu_embedding_table(weights, gene_embeddings, params)
    if table is None:
        return empty, empty, empty, empty
    seed = int(params.get("seed", 0))
    clusters = embeddings.cluster_genes(table, int(params["n_clusters"]))
    gene_map = embeddings.tsne_map(table, float(params["perplexity"]), seed).merge(
        clusters, on="gene"
    )
    genes = [g for g in table.index if g in amu_matrix.columns]
    ratios = amu_matrix[genes].astype(float)
    correlation = embeddings.coexpression(
        ratios.loc[:, ratios.std() > 0], method="spearman"
    )  # rank-based: log or not, the same
    membership = embeddings.signature_comembership(gene_set_dict(gene_sets), list(table.index))

    def neighbour_statistics(
        frame: pd.DataFrame,
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        found = embeddings.nearest_neighbour_pairs(frame, int(params["n_neighbours"]))
        return (
            found,
            *embeddings.compare_neighbours(
                found, correlation, membership, int(params["n_permutations"]), seed
            ),
        )

    pairs, per_pair, summary = neighbour_statistics(table)
    initial = amu_initial_embedding_table(
        weights, params
    )  # None exactly when `table` is the exported fallback
    if initial is not None:
        initial_pairs, _, initial_summary = neighbour_statistics(initial)
        drift = embeddings.embedding_drift(table, initial)
        shared = embeddings.shared_neighbour_fraction(pairs, initial_pairs)
        summary = embeddings.with_initial_comparison(summary, initial_summary, drift, shared)
        logger.info(
            "interpretation: AMU embedding drift from its initialisation %.4f; %.0f%% of neighbour pairs unchanged",
            drift,
            100 * shared,
        )
    else:
        summary = embeddings.with_initial_comparison(summary)
    euclidean, cosine = embeddings.embedding_similarities(table)
    similarity = pd.concat(
        [
            cosine.rename_axis(index="gene", columns="other").stack().rename("cosine_similarity"),
            euclidean.rename_axis(index="gene", columns="other")
            .stack()
            .rename("euclidean_distance"),
        ],
        axis=1,
    ).reset_index()
    return gene_map, per_pair, summary, similarity


# ----------------------------------------------------------------------------- IC2Bert


IMPORTANCE_TABLE_COLUMNS: tuple[str, ...] = (
    "held_out",
    "protocol",
    "trial",
    "gene",
    "attention",
    "permutation",
    "combined",
    "rank",
    "auroc_drop",
    "base_auroc",
    "n_test",
)


INPUT_TRANSFORMS = {
    "cohort_zscore": "expression_standardized",
    "none": "harmonized_expression",
    "log2_tpm1": "harmonized_expression",
}


def ic2bert_fold_bundles(bundles: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Fine-tuned IC2Bert bundles (``ModelBundle.to_dict()``; ``None`` = not run) by held-out cohort."""
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle

    found: dict[str, Any] = {}
    for values in bundles:
        if values is None:
            continue
        bundle = ModelBundle.from_dict(values)
        missing = {"held_out", "protocol", "trial"} - set(bundle.metadata)
        if missing:
            raise ValueError(
                f"IC2Bert bundle metadata lacks {sorted(missing)}: cannot tell which fold trained it"
            )
        if bundle.metadata["held_out"] in found:
            raise ValueError(
                f"two IC2Bert bundles for held-out cohort {bundle.metadata['held_out']!r}"
            )
        found[str(bundle.metadata["held_out"])] = bundle
    return found


def _ic2bert_input(
    bundle: Any,
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """The expression table a bundle was trained on (its metadata, else ``params.expression``)."""
    source = INPUT_TRANSFORMS.get(
        str(bundle.metadata.get("input_transform")),
        params.get("expression", "expression_standardized"),
    )
    tables = {
        "harmonized_expression": harmonized_expression,
        "expression_standardized": expression_standardized,
    }
    if source not in tables:
        raise ValueError(f"IC2Bert input {source!r} is not one of {sorted(tables)}")
    return tables[source].set_index(SAMPLE_KEY)


def _ic2bert_predictor(bundle: Any) -> Any:
    """Expression rows (the bundle's genes, its input scale) -> P(responder)."""
    from icb_kedro.models.ic2bert import predict as ic2bert_predict
    from icb_kedro.models.ic2bert.tokenizer import tokenize_values

    def predict(x: np.ndarray) -> np.ndarray:
        tokens = tokenize_values(bundle.tokenizer, np.asarray(x, dtype=float))
        # Through the bundle's readout (linear readout or the fine-tuned head), as predict does.
        return ic2bert_predict.score_tokens(bundle, tokens, batch_size=min(len(tokens), 256))

    return predict


def _ic2bert_fold_importance(
    bundle: Any, x_test: np.ndarray, labels: np.ndarray, seed: int, params: dict[str, Any]
) -> pd.DataFrame:
    """Attention, permutation and combined importance of one fine-tuned model on its test rows."""
    from icb_kedro.interpretation import importance
    from icb_kedro.models.ic2bert import predict as ic2bert_predict
    from icb_kedro.models.ic2bert.tokenizer import tokenize_values

    genes = list(bundle.genes)
    received = ic2bert_predict.received_attention(
        bundle.config,
        bundle.params,
        tokenize_values(bundle.tokenizer, x_test),
        batch_size=min(len(x_test), 8),
    )
    attention = importance.attention_importance_from_received(received, genes)
    permutation = pd.Series(0.0, index=attention.index)
    drop = pd.DataFrame({"gene": genes, "auroc_drop": np.nan, "base_auroc": np.nan})
    if labels.min() != labels.max():
        candidates = genes
        if params.get("permutation_genes"):
            candidates = (
                attention.sort_values(ascending=False)
                .index[: int(params["permutation_genes"])]
                .tolist()
            )
        columns = [genes.index(g) for g in candidates]
        predict = _ic2bert_predictor(bundle)

        def predict_subset(x_sub: np.ndarray) -> np.ndarray:
            full = x_test.copy()  # scikit-learn permutes one candidate column of the same test rows
            full[:, columns] = x_sub
            return predict(full)

        drop = importance.permutation_auroc_drop(
            predict_subset,
            x_test[:, columns],
            labels,
            candidates,
            n_repeats=int(params["n_repeats"]),
            seed=seed,
        )
        permutation.loc[candidates] = drop.set_index("gene")["auroc_drop"]
    else:
        logger.warning(
            "interpretation: IC2Bert test rows hold one class; permutation importance left at 0"
        )
    combined = importance.combine_importance(
        attention,
        permutation,
        float(params["attention_weight"]),
        float(params["permutation_weight"]),
    )
    return combined.merge(drop[["gene", "auroc_drop", "base_auroc"]], on="gene", how="left")


def explain_ic2bert(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    params: dict[str, Any],
    shap_params: dict[str, Any],
    *bundles: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IC2Bert importance (attention, permutation, combined) and KernelSHAP per held-out cohort.

    For each held-out cohort: the fine-tuned model the ic2bert_finetune pipeline chose (its
    protocol and trial are in the bundle's metadata; trained on that fold's training rows
    only) is applied to the TEST rows of the same fold. Attention = the real softmax
    probabilities (``models.ic2bert.predict``); permutation = drop in test AUROC over
    ``n_repeats`` permutations (restricted to the top ``permutation_genes`` genes by
    attention when set, the others get 0: a cost cap, stated in the report); combined =
    0.4 x attention + 0.6 x permutation (spec 2.6).
    """
    settings = setting_params(shap_params, "cohorts", "ic2bert")
    rows, shap_parts = [], []
    for held_out, bundle in sorted(ic2bert_fold_bundles(bundles).items()):
        protocol, trial = str(bundle.metadata["protocol"]), int(bundle.metadata["trial"])
        of_cohort = lodocv_folds[lodocv_folds["held_out"] == held_out]
        fold = next(
            (f for f in iter_protocol_folds(of_cohort, [protocol]) if f.trial == trial), None
        )
        if fold is None:
            raise ValueError(
                f"IC2Bert bundle of {held_out!r} ({protocol}, trial {trial}) has no matching fold in lodocv_folds"
            )
        table = _ic2bert_input(bundle, harmonized_expression, expression_standardized, params)
        genes = list(bundle.genes)
        labels = table.loc[fold.test_keys, LABEL].astype(int).to_numpy()
        x_test = table.loc[fold.test_keys, genes].to_numpy(float)
        scores = _ic2bert_fold_importance(bundle, x_test, labels, fold.seed, params)
        rows.append(
            scores.assign(held_out=held_out, protocol=protocol, trial=trial, n_test=len(labels))
        )
        if "ic2bert" in settings.get("models", []) and (
            not settings.get("cohorts") or held_out in settings["cohorts"]
        ):
            explain = explain_rows(
                fold.test_keys, table[LABEL], settings.get("max_explain_rows"), fold.seed
            )
            x_rows = table.loc[explain, genes].to_numpy(float)
            # KernelSHAP takes no NaN: explain the genes the explained rows measure, over
            # background rows that measure them too; a gene the cohort does not measure is
            # [MISSING] in every coalition, so its SHAP value is exactly 0.
            measured = ~np.isnan(x_rows).any(axis=0)
            background = table.loc[fold.train_keys, genes].to_numpy(float)[:, measured]
            background = background[~np.isnan(background).any(axis=1)]
            predict = _ic2bert_predictor(bundle)

            def predict_measured(x: np.ndarray, measured=measured, predict=predict) -> np.ndarray:
                full = np.full((len(x), len(genes)), np.nan)
                full[:, measured] = x
                return predict(full)

            values = np.zeros_like(x_rows)
            values[:, measured] = shap_analysis.kernel_shap_values(
                predict_measured,
                background,
                x_rows[:, measured],
                n_background=int(settings["n_background"]),
                nsamples=int(settings["nsamples"]),
                l1_reg=settings.get("l1_reg", "num_features(20)"),
                seed=fold.seed,
            )
            y_rows = table.loc[explain, LABEL].astype(int).to_numpy()
            shap_parts.append(
                _shap_frame(
                    "ic2bert", protocol, held_out, trial, explain, y_rows, values, x_rows, genes
                )
            )
    importance_table = (
        pd.concat(rows, ignore_index=True)[list(IMPORTANCE_TABLE_COLUMNS)]
        if rows
        else pd.DataFrame(columns=list(IMPORTANCE_TABLE_COLUMNS))
    )
    shap_table = pd.concat(shap_parts, ignore_index=True) if shap_parts else empty_shap_table()
    return importance_table, shap_table


def ic2bert_top_k_frequency(importance_table: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The paper's Table 7: per gene, in how many held-out cohorts' top-k it is."""
    from icb_kedro.interpretation import importance

    if importance_table.empty:
        return pd.DataFrame(columns=["gene", *[f"top{k}" for k in params["top_k"]], "n_groups"])
    return importance.top_k_frequency(
        importance_table, params["top_k"], score="combined", group="held_out"
    )


# ----------------------------------------------------------------------------- report


def _evaluation_tables(
    predictions: pd.DataFrame | None,
    cohort_table: pd.DataFrame | None,
    overall: pd.DataFrame | None,
    comparisons: pd.DataFrame | None,
    markdown: str | None,
    params: dict[str, Any],
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None, str | None, str]:
    """The evaluation pipeline's summaries, or the same summaries computed here from
    whatever predictions exist (then said so in the report)."""
    from icb_kedro.evaluation import summary

    if predictions is None or predictions.empty:
        return None, None, None, None, ""
    if cohort_table is not None and overall is not None and comparisons is not None:
        return (
            cohort_table,
            overall,
            comparisons,
            markdown,
            "Summaries: the evaluation pipeline's results tables.",
        )
    n_boot, seed = int(params["n_boot"]), int(params["seed"])
    cohort_table = summary.cohort_summary(predictions, n_boot=n_boot, seed=seed)
    overall = summary.overall_summary(predictions, n_boot=n_boot, seed=seed)
    comparisons = summary.paired_comparisons(predictions, n_boot=n_boot, seed=seed)
    note = (
        "Summaries computed by the interpretation pipeline from the available model predictions "
        f"(the evaluation pipeline's results were not found; {n_boot} bootstrap replicates)."
    )
    return (
        cohort_table,
        overall,
        comparisons,
        summary.summary_markdown(overall, cohort_table, comparisons),
        note,
    )


def _forget_pyplot_figure(figure: Any) -> None:
    """Drop a figure made with pyplot from pyplot's registry (it stays drawable/savable)."""
    import matplotlib.pyplot as plt

    plt.close(figure)


def build_report(
    cohort_summary: pd.DataFrame,
    panel_coverage: pd.DataFrame,
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    expression_combat: pd.DataFrame,
    clinical_table: pd.DataFrame,
    all_predictions: pd.DataFrame | None,
    predictions_baselines: pd.DataFrame | None,
    predictions_amu: pd.DataFrame | None,
    predictions_ic2bert: pd.DataFrame | None,
    results_cohort_summary: pd.DataFrame | None,
    results_overall_summary: pd.DataFrame | None,
    results_comparisons: pd.DataFrame | None,
    results_summary_md: str | None,
    ic2bert_pretrain_history: pd.DataFrame | None,
    ic2bert_sample_size: pd.DataFrame | None,
    ic2bert_learning_summary: pd.DataFrame | None,
    shap_study_svm: pd.DataFrame,
    shap_study_xgboost: pd.DataFrame,
    shap_study_amu: pd.DataFrame,
    shap_cohorts_svm: pd.DataFrame,
    shap_cohorts_xgboost: pd.DataFrame,
    shap_cohorts_amu: pd.DataFrame,
    shap_cohorts_ic2bert: pd.DataFrame,
    rankings: pd.DataFrame,
    overlap: pd.DataFrame,
    ic2bert_importance: pd.DataFrame,
    ic2bert_frequency: pd.DataFrame,
    embedding_map: pd.DataFrame,
    embedding_pairs: pd.DataFrame,
    embedding_summary: pd.DataFrame,
    embedding_cosine: pd.DataFrame,
    enrichment_table: pd.DataFrame,
    cox: pd.DataFrame,
    km: pd.DataFrame,
    params: dict[str, Any],
    results_meta_analysis: pd.DataFrame | None = None,
    results_calibration: pd.DataFrame | None = None,
    stability: pd.DataFrame | None = None,
    cox_null: pd.DataFrame | None = None,
    amu_learning_check: pd.DataFrame | None = None,
) -> tuple[str, dict[str, Any]]:
    """The self-contained HTML study report and its figures (``<name>.png`` -> Figure)."""
    from icb_kedro.pipelines.harmonization.nodes import plot_panel_coverage, plot_pca_before_after
    from icb_kedro.reporting.report import StudyInputs, build_study_report

    model_predictions = {
        "baselines": predictions_baselines,
        "amu": predictions_amu,
        "ic2bert": predictions_ic2bert,
    }
    not_run = {
        f"{name} predictions": "the pipeline has not been run"
        for name, table in model_predictions.items()
        if table is None
    }
    predictions = choose_predictions(all_predictions, model_predictions)
    if all_predictions is None and predictions is not None:
        not_run["evaluation (all_predictions, results_*)"] = (
            "the evaluation pipeline has not been run; summaries computed here"
        )
    cohort_table, overall, comparisons, markdown, source = _evaluation_tables(
        predictions,
        results_cohort_summary,
        results_overall_summary,
        results_comparisons,
        results_summary_md,
        params["evaluation"],
    )
    shap_tables = {}
    for table in (
        shap_study_svm,
        shap_study_xgboost,
        shap_study_amu,
        shap_cohorts_svm,
        shap_cohorts_xgboost,
        shap_cohorts_amu,
        shap_cohorts_ic2bert,
    ):
        if table is not None and len(table):
            for (protocol, model), part in table.groupby(["protocol", "model"]):
                shap_tables[f"{protocol}:{model}"] = part
    for name, table in (
        ("AMU SHAP (study)", shap_study_amu),
        ("AMU SHAP (cohorts)", shap_cohorts_amu),
        ("IC2Bert SHAP", shap_cohorts_ic2bert),
    ):
        if table is None or table.empty:
            not_run[name] = (
                "no fitted fold models of this model were found (or it is not listed in interpretation.shap)"
            )
    for key, table in shap_tables.items():
        values = table.loc[table["kind"] == "shap", shap_gene_columns(table)].to_numpy(float)
        if not np.nanmax(np.abs(values)) > 0:
            not_run[f"SHAP ranking of {key}"] = (
                "the model predicts the same probability for every explained test row (all SHAP values are 0): check its training"
            )
    if ic2bert_pretrain_history is None:
        not_run["IC2Bert MLM accuracy vs n_bins"] = "no pretraining history found"
    if ic2bert_sample_size is None:
        not_run["IC2Bert sample-size curves"] = "no sample-size output found"
    if ic2bert_importance is None or ic2bert_importance.empty:
        not_run["IC2Bert importance"] = "no fine-tuned IC2Bert fold models found"
    if embedding_map is None or embedding_map.empty:
        not_run["AMU gene embeddings"] = "no fitted AMU network found"
    _, km_figures = km_by_model(predictions, clinical_table, params["survival"])
    pca_figure = plot_pca_before_after(
        harmonized_expression, expression_standardized, expression_combat
    )
    _forget_pyplot_figure(pca_figure)
    coverage_figure = plot_panel_coverage(panel_coverage)
    _forget_pyplot_figure(coverage_figure)
    inputs = StudyInputs(
        cohort_summary=cohort_summary,
        pca_figure=pca_figure,
        coverage_figure=coverage_figure,
        predictions=predictions,
        cohort_table=cohort_table,
        overall=overall,
        comparisons=comparisons,
        meta=results_meta_analysis,
        calibration=results_calibration,
        evaluation_markdown=markdown,
        evaluation_source=source,
        pretrain_history=ic2bert_pretrain_history,
        sample_size=ic2bert_sample_size,
        learning_summary=ic2bert_learning_summary,
        amu_learning=amu_learning_check,
        shap_tables=shap_tables,
        rankings=rankings,
        overlap=overlap,
        stability=stability,
        cox_null=cox_null,
        ic2bert_importance=ic2bert_importance,
        ic2bert_frequency=ic2bert_frequency,
        embedding_map=embedding_map,
        embedding_pairs=embedding_pairs,
        embedding_summary=embedding_summary,
        embedding_cosine=embedding_cosine,
        enrichment=enrichment_table,
        cox=cox,
        km=km,
        km_figures=km_figures,
        not_run=not_run,
    )
    report = params["report"]
    html, figures = build_study_report(
        inputs, report["title"], top_k=int(report.get("top_k", 10)), dpi=int(report.get("dpi", 110))
    )
    return html, {name: png_image(data) for name, data in figures.items()}


def png_image(data: bytes) -> Any:
    """PNG bytes as a PIL image (what the catalog's ``pillow.ImageDataset`` partitions save)."""
    import io

    from PIL import Image

    picture = Image.open(io.BytesIO(data))
    picture.load()  # decode now; keeps .format == "PNG"
    return picture
