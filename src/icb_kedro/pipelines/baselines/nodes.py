"""Nodes of the baselines pipeline: classical models and published signatures on the shared folds.

Thin wrappers: models live in ``icb_kedro.models.baselines`` (estimators, signatures), folds
and metrics in ``icb_kedro.evaluation``. Every model and every signature is scored on the
same test rows of the same folds (``iter_protocol_folds`` / ``iter_amu_holdout_folds``) and
written as one ``schema.PREDICTION_COLUMNS`` table, from which all summaries derive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.evaluation.protocols import (
    AMU_PROTOCOL,
    FoldSpec,
    iter_amu_holdout_folds,
    iter_protocol_folds,
)
from icb_kedro.evaluation.summary import (
    cohort_summary,
    fold_metrics,
    overall_summary,
    paired_comparisons,
    summary_markdown,
    validate_predictions,
)
from icb_kedro.models.amu.features import log_constituent_ratios  # numpy only, no Paddle
from icb_kedro.models.baselines.estimators import (
    FoldFit,
    ModelSpec,
    SearchResult,
    fit_predict_fold,
    model_spec_from_params,
    params_to_json,
    search_hyperparameters,
)
from icb_kedro.models.baselines.signatures import (
    MODEL_PREFIX,
    fit_score_scale,
    parse_signature_files,
    score_signatures,
    scores_to_probability,
    signature_coverage,
)
from icb_kedro.panels import select_panel_features
from icb_kedro.schema import (
    COHORT,
    LABEL,
    PREDICTION_COLUMNS,
    SAMPLE_KEY,
    empty_predictions,
    gene_columns,
    prediction_frame,
)

logger = logging.getLogger(__name__)

# With transfer_search: source, these protocols of a held-out cohort share one search on its
# source rows: loco trains on exactly those rows, transfer on them plus the target's 80%.
SHARED_SEARCH_PROTOCOLS: tuple[str, ...] = ("transfer", "loco")
TRANSFER_SEARCH_SCOPES: tuple[str, ...] = ("fold", "source")
SEARCH_LOG_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "cohort",
    "repeat",
    "trial",
    "seed",
    "n_train",
    "n_test",
    "search_rows",
    "n_inner_splits",
    "inner_auroc",
    "best_params",
    "threshold",
    "threshold_source",
    "platt_intercept",
    "platt_slope",
    "seconds",
)


# ----------------------------------------------------------------------------- inputs


def amu_log_features(amu_matrix: pd.DataFrame, pseudo_count: float) -> pd.DataFrame:
    """The AMU matrix with its 160 constituent ratios replaced by ln(ratio + pseudo_count).

    The AMU pipeline's own encoding (``icb_kedro.models.amu.features``; spec item 3: the
    original -ln(ratio) with zeros set to 0 inverted the scale), so AMU and its competitors
    see identical features. Stateless: applying it before splitting leaks nothing.
    """
    genes = [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL, COHORT)]
    logged = log_constituent_ratios(amu_matrix[genes].to_numpy(), pseudo_count)
    table = pd.DataFrame(logged, columns=genes, index=amu_matrix.index)
    return pd.concat([amu_matrix[[SAMPLE_KEY, LABEL]], table], axis=1).assign(**{COHORT: "AMU"})


# ----------------------------------------------------------------------------- models


def _labelled_matrix(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Features (index = sample_key) and labels (Int8 with <NA>) of a wide table."""
    indexed = table.set_index(SAMPLE_KEY)
    genes = [c for c in gene_columns(table) if c != SAMPLE_KEY]
    return indexed[genes], indexed[LABEL]


def _fold_arrays(
    features: pd.DataFrame, labels: pd.Series, fold: FoldSpec
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    for role, keys in (("training", fold.train_keys), ("test", fold.test_keys)):
        absent = [k for k in keys if k not in features.index]
        if absent:
            raise ValueError(
                f"{fold.protocol} fold {fold.held_out!r}/{fold.trial}: "
                f"{len(absent)} {role} samples have no features, e.g. {absent[:3]}"
            )
        unlabelled = labels.loc[keys].isna()
        if unlabelled.any():
            raise ValueError(
                f"{fold.protocol} fold {fold.held_out!r}/{fold.trial}: "
                f"{role} samples without a label: {unlabelled[unlabelled].index[:3].tolist()}"
            )
    return (
        features.loc[fold.train_keys].to_numpy(float),
        labels.loc[fold.train_keys].to_numpy(int),
        features.loc[fold.test_keys].to_numpy(float),
        labels.loc[fold.test_keys].to_numpy(int),
    )


def _fit_fold_task(
    spec: ModelSpec,
    arrays: tuple,
    seed: int,
    settings: Mapping[str, Any],
    smote: bool,
    fixed_params: dict[str, Any] | None,
) -> FoldFit:
    """One fold in a worker process; the fitted estimator stays there (only results travel back)."""
    x_train, y_train, x_test = arrays
    fit = fit_predict_fold(
        spec,
        x_train,
        y_train,
        x_test,
        seed=seed,
        inner_splits=int(settings["inner_cv_splits"]),
        n_jobs=1,
        threshold_method=settings["threshold_method"],
        threshold_source=settings["threshold_source"],
        smote=smote,
        n_features=settings.get("n_features"),
        fixed_params=fixed_params,
        calibration=settings["calibration"],
    )
    return fit._replace(estimator=None)


def _search_task(
    spec: ModelSpec,
    x_train: np.ndarray,
    y_train: np.ndarray,
    seed: int,
    settings: Mapping[str, Any],
) -> SearchResult:
    return search_hyperparameters(
        spec,
        x_train,
        y_train,
        seed=seed,
        inner_splits=int(settings["inner_cv_splits"]),
        n_features=settings.get("n_features"),
    )


def _parallel(tasks: list, n_jobs: int, description: str) -> list:
    """Run joblib tasks in ``n_jobs`` processes, in order, with a progress bar."""
    runner = Parallel(n_jobs=int(n_jobs), return_as="generator")
    return list(tqdm(runner(tasks), total=len(tasks), desc=description, unit="fold", leave=False))


def search_on_source_rows(
    spec: ModelSpec, table: pd.DataFrame, loco_folds: list[FoldSpec], settings: Mapping[str, Any]
) -> dict[str, SearchResult]:
    """Hyper-parameters per held-out cohort, searched on its source rows (= its loco training rows).

    The source rows are training rows of every transfer fold of that cohort (transfer trains
    on source + the target's 80% split), so reusing the result there leaks nothing and
    replaces 10 searches by one.
    """
    if spec.search == "none":
        return {}
    features, labels = _labelled_matrix(table)
    arrays = [_fold_arrays(features, labels, fold) for fold in loco_folds]
    seeds = [int(fold.seed) + int(settings.get("seed_offset", 0)) for fold in loco_folds]
    tasks = [
        delayed(_search_task)(spec, a[0], a[1], seed, settings) for a, seed in zip(arrays, seeds)
    ]
    results = _parallel(tasks, settings.get("n_jobs", 1), f"baselines {spec.name} source search")
    return {fold.held_out: result for fold, result in zip(loco_folds, results)}


def run_model_folds(
    spec: ModelSpec,
    table: pd.DataFrame,
    folds: Iterable[FoldSpec],
    settings: Mapping[str, Any],
    smote: bool = False,
    shared_search: Mapping[str, SearchResult] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit and score ``spec`` on every fold; return (predictions, search log).

    Folds run in ``settings["n_jobs"]`` processes (joblib); each fold is seeded by its own
    seed, so results do not depend on the number of processes or their order.
    ``shared_search`` (held-out cohort -> result of :func:`search_on_source_rows`) gives the
    hyper-parameters of that cohort's transfer and loco folds instead of a per-fold search.
    """
    shared_search = shared_search or {}
    features, labels = _labelled_matrix(table)
    folds = list(folds)
    arrays = [_fold_arrays(features, labels, fold) for fold in folds]  # validates every fold first
    seeds = [int(fold.seed) + int(settings.get("seed_offset", 0)) for fold in folds]
    shared = [
        shared_search.get(f.held_out) if f.protocol in SHARED_SEARCH_PROTOCOLS else None
        for f in folds
    ]
    tasks = [
        delayed(_fit_fold_task)(
            spec, a[:3], seed, settings, smote, None if s is None else s.best_params
        )
        for a, seed, s in zip(arrays, seeds, shared)
    ]
    fits = _parallel(tasks, settings.get("n_jobs", 1), f"baselines {spec.name}")
    predictions, log = [], []
    for fold, (_, _, _, y_test), seed, fit, search in zip(folds, arrays, seeds, fits, shared):
        predictions.append(prediction_frame(spec.name, fold, y_test, fit.y_prob, fit.threshold))
        if search is not None:  # report the shared search, not the skipped one
            fit = fit._replace(inner_auroc=search.inner_auroc, n_inner_splits=search.n_inner_splits)
        log.append(
            {
                "model": spec.name,
                "protocol": fold.protocol,
                "cohort": fold.held_out,
                "repeat": fold.repeat,
                "trial": fold.trial,
                "seed": seed,
                "n_train": len(fold.train_keys),
                "n_test": len(fold.test_keys),
                "search_rows": "fold" if search is None or fold.protocol == "loco" else "source",
                "n_inner_splits": fit.n_inner_splits,
                "inner_auroc": fit.inner_auroc,
                "best_params": params_to_json(fit.best_params),
                "threshold": fit.threshold,
                "threshold_source": fit.threshold_source,
                "platt_intercept": fit.platt[0],
                "platt_slope": fit.platt[1],
                "seconds": fit.seconds,
            }
        )
    return _predictions_frame(predictions), pd.DataFrame(log, columns=list(SEARCH_LOG_COLUMNS))


def _predictions_frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
    return (
        pd.concat(parts, ignore_index=True)[list(PREDICTION_COLUMNS)]
        if parts
        else empty_predictions()
    )


def lodocv_folds_of(
    lodocv_folds: pd.DataFrame, protocols: list[str], params: Mapping[str, Any]
) -> list[FoldSpec]:
    """The LODOCV folds to score: ``params.n_trials`` trials,
    held-out cohorts in ``params.held_out`` (null = all)."""
    wanted = params.get("held_out")
    if wanted:
        unknown = sorted(set(wanted) - set(lodocv_folds["held_out"]))
        if unknown:
            raise ValueError(
                f"baselines.held_out names cohorts that are not in lodocv_folds: {unknown}"
            )
        lodocv_folds = lodocv_folds[lodocv_folds["held_out"].isin(wanted)]
    return list(iter_protocol_folds(lodocv_folds, protocols, params.get("n_repeats")))


def _settings(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "inner_cv_splits": params["inner_cv"]["n_splits"],
        "n_jobs": params.get("n_jobs", 1),
        "threshold_method": params["threshold"]["method"],
        "threshold_source": params["threshold"]["source"],
        "seed_offset": params.get("seed_offset", 0),
        "n_features": params.get("n_features"),
        "calibration": params.get("calibration", "none"),
    }


def fit_predict_model(
    model_name: str,
    features: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One baseline model on every configured protocol: (predictions, search log).

    LODOCV protocols use ``features`` (the per-cohort standardized panel); ``amu_holdout``
    uses log constituent ratios of the AMU matrix with SMOTE inside the training rows
    (``params.amu_holdout.smote``). ``params.transfer_search``: ``fold`` = every fold
    searches on its own training rows; ``source`` = one search per held-out cohort on its
    source rows, shared by its loco fold and its transfer folds (see
    :func:`search_on_source_rows`). A disabled model returns empty tables.
    """
    model_params = params["models"].get(model_name)
    if model_params is None:
        raise ValueError(
            f"baselines.models has no entry {model_name!r}; it has {sorted(params['models'])}"
        )
    if not model_params.get("enabled", True):
        logger.info("baselines: model %s is disabled", model_name)
        return _predictions_frame([]), pd.DataFrame(columns=list(SEARCH_LOG_COLUMNS))
    spec = model_spec_from_params(model_name, model_params)
    wanted = [p for p in params["protocols"] if spec.protocols is None or p in spec.protocols]
    settings = _settings(params)
    parts = []
    lodocv = [p for p in wanted if p != AMU_PROTOCOL]
    if lodocv:
        scope = params.get("transfer_search", "fold")
        if scope not in TRANSFER_SEARCH_SCOPES:
            raise ValueError(
                f"baselines.transfer_search must be one of {TRANSFER_SEARCH_SCOPES}, got {scope!r}"
            )
        shared = {}
        if scope == "source" and "transfer" in lodocv:
            shared = search_on_source_rows(
                spec, features, lodocv_folds_of(lodocv_folds, ["loco"], params), settings
            )
        folds = lodocv_folds_of(lodocv_folds, lodocv, params)
        parts.append(run_model_folds(spec, features, folds, settings, shared_search=shared))
    if AMU_PROTOCOL in wanted:
        amu = params["amu_holdout"]
        table = amu_log_features(amu_matrix, float(amu["pseudo_count"]))
        folds = iter_amu_holdout_folds(amu_holdout_folds, amu.get("n_trials"))
        amu_settings = {**settings, "n_features": amu.get("n_features")}  # all 160 genes by default
        parts.append(run_model_folds(spec, table, folds, amu_settings, smote=bool(amu["smote"])))
    predictions = _predictions_frame([p for p, _ in parts if len(p)])
    log = (
        pd.concat([log for _, log in parts], ignore_index=True)
        if parts
        else pd.DataFrame(columns=list(SEARCH_LOG_COLUMNS))
    )
    return predictions, log


# ----------------------------------------------------------------------------- registry
#: Families the deployed baseline is chosen from (the CNN belongs to AMU's study setting).
DEPLOYABLE_FAMILIES: tuple[str, ...] = ("logreg", "svm", "rf", "adaboost", "xgboost", "mlp")


def choose_deployment_family(
    cohort_table: pd.DataFrame, params: Mapping[str, Any]
) -> tuple[str, float, int]:
    """(family, its mean AUROC over held-out cohorts, number of cohorts) under
    ``baselines.registry``: ``model: best`` = the enabled family with the highest mean
    ``selection_protocol`` (zero-shot ``loco``) AUROC; or a family name."""
    registry = params.get("registry") or {}
    protocol = registry.get("selection_protocol", "loco")
    enabled = [
        m for m in DEPLOYABLE_FAMILIES if (params["models"].get(m) or {}).get("enabled", False)
    ]
    rows = cohort_table[
        (cohort_table["protocol"] == protocol) & cohort_table["model"].isin(enabled)
    ]
    means = rows.groupby("model")["auroc_mean"].agg(["mean", "count"]).dropna()
    if means.empty:
        raise ValueError(
            f"baselines.registry: no {protocol!r} results of the families {enabled} to choose the "
            "deployed baseline from"
        )
    wanted = registry.get("model", "best")
    if wanted == "best":
        wanted = str(means["mean"].idxmax())
    elif wanted not in means.index:
        raise ValueError(
            f"baselines.registry.model {wanted!r} has no {protocol!r} results; "
            f"choose one of {sorted(means.index)} or 'best'"
        )
    return wanted, float(means.loc[wanted, "mean"]), int(means.loc[wanted, "count"])


def fit_deployment_baseline(
    features: pd.DataFrame, cohort_table: pd.DataFrame, params: dict[str, Any]
):
    """The registered baseline (``icb_baseline``): the chosen family refitted on every labelled
    patient of the panel, with the same pipeline, inner-CV search and threshold rule as a fold.

    Choosing the family on held-out results and then refitting on all rows is the usual
    deployment step; the held-out numbers it was chosen by describe the recipe, not this fit.
    """
    from icb_kedro.models.baselines.pyfunc import BaselinePyfunc

    family, mean_auroc, n_cohorts = choose_deployment_family(cohort_table, params)
    spec = model_spec_from_params(family, params["models"][family])
    table, labels = _labelled_matrix(features)
    labelled = labels.notna().to_numpy()
    x, y = table.to_numpy(float)[labelled], labels[labelled].to_numpy(int)
    settings = _settings(params)
    seed = int((params.get("registry") or {}).get("seed", 0)) + int(settings["seed_offset"])
    fit = fit_predict_fold(
        spec,
        x,
        y,
        x[:1],
        seed=seed,
        inner_splits=settings["inner_cv_splits"],
        n_jobs=settings["n_jobs"],
        threshold_method=settings["threshold_method"],
        threshold_source=settings["threshold_source"],
        n_features=settings["n_features"],
        calibration=settings["calibration"],
    )
    cohorts = sorted(features.loc[labelled, COHORT].unique())
    protocol = (params.get("registry") or {}).get("selection_protocol", "loco")
    metadata = {
        "family": family,
        "protocol": "final",
        "stage": f"refitted on all {len(y)} labelled patients",
        "selection": f"best mean {protocol} AUROC of {list(DEPLOYABLE_FAMILIES)}",
        "selection_auroc": f"mean {protocol} AUROC {mean_auroc:.3f} over {n_cohorts} cohorts",
        "n_cohorts": n_cohorts,
        "n_train": len(y),
        "n_genes": table.shape[1],
        "training_cohorts": ", ".join(cohorts),
        "best_params": params_to_json(fit.best_params),
        "inner_splits": fit.n_inner_splits,
        "threshold": fit.threshold,
        "input_transform": "cohort_zscore",
    }
    logger.info(
        "baselines: registering %s refitted on %d patients (%s)",
        family,
        len(y),
        metadata["selection_auroc"],
    )
    return BaselinePyfunc(fit.estimator, list(table.columns), metadata)


# ----------------------------------------------------------------------------- signatures


def parse_signatures(signature_files: Mapping[str, Callable[[], str] | str]) -> pd.DataFrame:
    """The signature folder (a PartitionedDataset of text files) -> one long signature table."""
    return parse_signature_files(signature_files)


def check_signature_coverage(
    signatures: pd.DataFrame, gene_panels: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """``signature_coverage``: which signatures are scored on the panel, which fail and why."""
    genes = gene_panels.loc[gene_panels["panel"] == params["panel"], "gene"].tolist()
    if not genes:
        raise ValueError(f"signature panel {params['panel']!r} is empty or unknown")
    coverage = signature_coverage(
        signatures, genes, float(params["min_coverage"]), params.get("include_below_coverage")
    )
    failed = coverage[coverage["status"] == "failed"]
    logger.info(
        "signatures: %d scored, %d failed the coverage rule",
        len(coverage) - len(failed),
        len(failed),
    )
    return coverage


def compute_signature_scores(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    signatures: pd.DataFrame,
    coverage: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Every sample's score for every scored signature: ``sample_key, cohort, label,
    sig_<NAME>...``.

    Scores are per sample (ssGSEA ranks genes within a sample; weighted means use the
    label-free within-cohort z-scores), so they are computed once and reused by every fold.
    """
    raw = select_panel_features(harmonized_expression, gene_panels, params["panel"]).set_index(
        SAMPLE_KEY
    )
    z = select_panel_features(expression_standardized, gene_panels, params["panel"]).set_index(
        SAMPLE_KEY
    )
    if not raw.index.equals(z.index):
        z = z.reindex(raw.index)
        if z.isna().all(axis=1).any():
            raise ValueError(
                "harmonized_expression and expression_standardized hold different samples"
            )
    genes = [c for c in raw.columns if c not in (COHORT, LABEL)]
    scores = score_signatures(
        raw[genes],
        z[genes],
        raw[COHORT],
        signatures,
        coverage,
        min_subset_coverage=float(params["min_coverage"]),
        ssgsea_weight=float(params["ssgsea_weight"]),
    )
    return pd.concat([raw[[COHORT, LABEL]], scores], axis=1).reset_index()


def _signature_fold_predictions(
    signature_scores: pd.DataFrame, folds: Iterable[FoldSpec], method: str, description: str
) -> pd.DataFrame:
    """Every ``sig_*`` column of ``signature_scores`` scored on every fold's test rows.

    Per fold, the score's location/scale (label-free) and the decision threshold
    (``method``) are fitted on the fold's training rows only.
    """
    names = [c for c in signature_scores.columns if c.startswith(MODEL_PREFIX)]
    if not names:
        return _predictions_frame([])
    scores = signature_scores.set_index(SAMPLE_KEY)
    labels = scores[LABEL]
    parts = []
    for fold in tqdm(list(folds), desc=description, unit="fold", leave=False):
        _, y_train, _, y_test = _fold_arrays(scores[names], labels, fold)
        for name in names:
            train_scores = scores.loc[fold.train_keys, name].to_numpy(float)
            location, scale = fit_score_scale(train_scores)
            p_train = scores_to_probability(train_scores, location, scale)
            y_prob = scores_to_probability(
                scores.loc[fold.test_keys, name].to_numpy(float), location, scale
            )
            parts.append(
                prediction_frame(
                    name, fold, y_test, y_prob, fit_threshold(y_train, p_train, method)
                )
            )
    return _predictions_frame(parts)


def predict_signatures(
    signature_scores: pd.DataFrame, lodocv_folds: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Signature "predictions" on every LODOCV fold's test rows (same rows as the models).

    Per fold, the score's location/scale (label-free) and the decision threshold are fitted
    on the fold's training rows; ``y_prob`` = sigmoid of the standardized score (a monotone
    map: AUROC/AUPRC are the signature's own; Brier is not meaningful, see signatures.py).
    """
    lodocv = [p for p in params["protocols"] if p != AMU_PROTOCOL]
    if not lodocv or not any(c.startswith(MODEL_PREFIX) for c in signature_scores.columns):
        return _predictions_frame([])
    folds = lodocv_folds_of(lodocv_folds, lodocv, params)
    return _signature_fold_predictions(
        signature_scores, folds, params["threshold"]["method"], "baselines signatures"
    )


# --------------------------------------------------------------------- signatures on the AMU matrix
# Signatures need no training, so they are scored in every protocol on the same test rows,
# the AMU study setting included (issue 3): its 160 genes, as ln(constituent ratio + pseudo_count).

# Methods that cannot be computed on log constituent ratios (all negative): COX_IS divides
# mean log expression of two gene groups, which needs non-negative log2(TPM+1).
_AMU_UNSCORABLE_METHODS: dict[str, str] = {
    "cox_is": "COX_IS divides mean log2(TPM+1) of two gene groups; the AMU matrix holds "
    "constituent ratios (their logs are negative), so the ratio is undefined",
}


def _amu_genes(amu_matrix: pd.DataFrame) -> list[str]:
    """Gene columns of the ingested AMU matrix (every column but ``sample_key``/``label``)."""
    return [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL, COHORT)]


def check_amu_signature_coverage(
    signatures: pd.DataFrame, amu_matrix: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """``baselines_amu_signature_coverage``: the coverage table against the AMU matrix's genes.

    Same rule as :func:`check_signature_coverage` (> ``min_coverage`` of a signature's genes
    among the AMU matrix's columns); ``include_below_coverage`` is NOT applied, as it is a
    choice made for the cohort panel (IMPRES has 8 complete pairs there, 3 here). Methods
    that log ratios cannot feed (COX_IS) fail with the reason.
    """
    genes = _amu_genes(amu_matrix)
    if not genes:
        raise ValueError(f"amu_matrix has no gene columns; it has {list(amu_matrix.columns)}")
    coverage = signature_coverage(signatures, genes, float(params["min_coverage"]))
    for method, reason in _AMU_UNSCORABLE_METHODS.items():
        rows = (coverage["method"] == method) & coverage["status"].str.startswith("scored")
        coverage.loc[rows, "reason"] = coverage.loc[rows, "reason"] + "; but " + reason
        coverage.loc[rows, "status"] = "failed"
    scored = coverage.loc[coverage["status"].str.startswith("scored"), "signature"].tolist()
    logger.info(
        "signatures on the AMU matrix (%d genes): %d scored %s, %d failed",
        len(genes),
        len(scored),
        scored,
        len(coverage) - len(scored),
    )
    return coverage


def score_amu_signatures(
    amu_matrix: pd.DataFrame,
    signatures: pd.DataFrame,
    amu_coverage: pd.DataFrame,
    params: dict[str, Any],
) -> pd.DataFrame:
    """Every AMU sample's score for every signature scored on the AMU matrix.

    Same layout as :func:`compute_signature_scores` (``sample_key, cohort, label, sig_<NAME>...``,
    cohort ``"AMU"``). Inputs of :func:`score_signatures`: the "log expression" is
    ln(ratio + ``params.amu_holdout.pseudo_count``), the models' AMU encoding (per sample,
    ranks are those of the TPM values: a constituent ratio is a sample's TPM over its sum);
    the z-scores are those log ratios standardized per gene over all AMU samples (label-free;
    the AMU matrix is one cohort, as the cohorts are standardized within themselves).
    ssGSEA ranks the z-scores within each sample, as on the cohorts.
    """
    table = amu_log_features(amu_matrix, float(params["amu_holdout"]["pseudo_count"])).set_index(
        SAMPLE_KEY
    )
    if table.index.duplicated().any():
        raise ValueError("amu_matrix has duplicated sample_key values")
    genes = _amu_genes(amu_matrix)
    logged = table[genes]
    sd = logged.std(ddof=0)
    z = (logged - logged.mean()) / sd.where(
        sd > 0.0, np.inf
    )  # per gene (column); constant genes -> 0
    settings = params["signatures"]
    scores = score_signatures(
        logged,
        z,
        table[COHORT],
        signatures,
        amu_coverage,
        min_subset_coverage=float(settings["min_coverage"]),
        ssgsea_weight=float(settings["ssgsea_weight"]),
    )
    return pd.concat([table[[COHORT, LABEL]], scores], axis=1).reset_index()


def predict_amu_signatures(
    amu_signature_scores: pd.DataFrame, amu_holdout_folds: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """Signature "predictions" on every ``amu_holdout`` fold's test rows (the models' rows).

    As on the LODOCV folds: location/scale and threshold fitted on the fold's training rows;
    protocol ``amu_holdout``, cohort ``"AMU"``. Empty when ``amu_holdout`` is not a
    configured protocol or no signature passed the coverage rule on the AMU matrix.
    """
    if AMU_PROTOCOL not in params["protocols"] or not any(
        c.startswith(MODEL_PREFIX) for c in amu_signature_scores.columns
    ):
        return _predictions_frame([])
    folds = iter_amu_holdout_folds(amu_holdout_folds, params["amu_holdout"].get("n_trials"))
    return _signature_fold_predictions(
        amu_signature_scores, folds, params["threshold"]["method"], "baselines signatures (AMU)"
    )


# ----------------------------------------------------------------------------- results


def combine_predictions(*tables: pd.DataFrame) -> pd.DataFrame:
    """All models' and signatures' predictions in one checked table (sorted)."""
    parts = [t for t in tables if len(t)]
    if not parts:
        raise ValueError(
            "no baseline produced predictions: every model is disabled and no signature was scored"
        )
    combined = validate_predictions(pd.concat(parts, ignore_index=True))
    return combined.sort_values(
        ["model", "protocol", "cohort", "trial", SAMPLE_KEY], kind="stable"
    ).reset_index(drop=True)


def combine_search_logs(*logs: pd.DataFrame) -> pd.DataFrame:
    """The models' search logs in one table (chosen hyper-parameters and timings per fold)."""
    parts = [log for log in logs if len(log)]
    if not parts:
        return pd.DataFrame(columns=list(SEARCH_LOG_COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(SEARCH_LOG_COLUMNS)]


def compute_fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """The tidy results table (one row per model x protocol x cohort x trial)."""
    return fold_metrics(predictions)


def summarize_cohorts(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Per (model, protocol, cohort): mean/sd over trials and a patient-bootstrap 95% CI."""
    return cohort_summary(predictions, n_boot=int(params["n_boot"]), seed=int(params["seed"]))


def summarize_overall(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Per (model, protocol): unweighted mean over cohorts with a CI."""
    return overall_summary(predictions, n_boot=int(params["n_boot"]), seed=int(params["seed"]))


def compare_models(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """Paired AUROC comparisons (DeLong + paired bootstrap per cohort, combined across cohorts)."""
    return paired_comparisons(
        predictions,
        reference_model=params.get("reference_model"),
        n_boot=int(params["n_boot"]),
        seed=int(params["seed"]),
    )


def _settings_line(params: Mapping[str, Any]) -> str:
    features = (
        "all genes"
        if params.get("n_features") is None
        else f"the {params['n_features']} genes with the largest ANOVA F"
    )
    return (
        f"Models: panel `{params['panel']}` of the per-cohort standardized expression, {features} "
        "(selected on each fold's training rows), hyper-parameters by "
        f"{params['inner_cv']['n_splits']}-fold inner CV on training rows (transfer: "
        f"`{params.get('transfer_search', 'fold')}` rows), decision threshold "
        f"`{params['threshold']['method']}` on `{params['threshold']['source']}` training "
        f"probabilities; AMU matrix: ln(ratio + {params['amu_holdout']['pseudo_count']:g}), "
        f"{'all genes' if params['amu_holdout'].get('n_features') is None else str(params['amu_holdout']['n_features']) + ' genes'}"  # noqa: E501
        f"{', SMOTE inside training rows' if params['amu_holdout'].get('smote') else ''}."
    )


def write_summary_markdown(
    overall: pd.DataFrame,
    cohort_table: pd.DataFrame,
    comparisons: pd.DataFrame,
    coverage: pd.DataFrame,
    search_log: pd.DataFrame,
    params: dict[str, Any],
    amu_coverage: pd.DataFrame | None = None,
) -> str:
    """The baselines report: settings, signature coverage (cohort panel and AMU matrix), then
    the shared evaluation section."""
    lines = [
        "# Baselines: classical models and published signatures",
        "",
        _settings_line(params),
        "",
    ]
    scored = coverage[coverage["status"].str.startswith("scored")]
    failed = coverage[coverage["status"] == "failed"]
    lines.append(
        f"Signatures: {len(scored)} of {len(coverage)} scored ({', '.join(scored['signature'])}); "
        f"{len(failed)} failed the coverage rule (> {params['signatures']['min_coverage']:.0%} of "
        "genes in the panel) or cannot be computed:"
    )
    lines.append("")
    lines += [f"- {row.signature}: {row.reason}" for row in failed.itertuples(index=False)]
    below = coverage[coverage["status"] == "scored_below_coverage"]
    lines += [
        f"- {row.signature} (scored below coverage): {row.reason}"
        for row in below.itertuples(index=False)
    ]
    if amu_coverage is not None and AMU_PROTOCOL in params["protocols"]:
        amu_scored = amu_coverage[amu_coverage["status"].str.startswith("scored")]
        lines += [
            "",
            "Signatures on the AMU matrix (`amu_holdout`, its genes as ln(ratio + "
            f"{params['amu_holdout']['pseudo_count']:g}), z-scored over its samples): "
            f"{len(amu_scored)} of {len(amu_coverage)} scored "
            f"({', '.join(amu_scored['signature']) or 'none'}), by the same coverage rule; "
            "the others fail it (table `baselines_amu_signature_coverage`).",
        ]
        # Also list signatures that pass coverage but cannot be computed on constituent ratios.
        unscorable = amu_coverage[
            amu_coverage["method"].isin(list(_AMU_UNSCORABLE_METHODS))
            & (amu_coverage["status"] == "failed")
            & (amu_coverage["coverage"] > float(params["signatures"]["min_coverage"]))
        ]
        listed = pd.concat([amu_scored, unscorable])
        lines += [
            f"- {row.signature} (AMU matrix): {row.reason}"
            for row in listed.itertuples(index=False)
        ]
    lines += [
        "",
        "Signature models (`sig_*`) are fixed scores (resistance signatures sign-flipped); their "
        "`y_prob` is a logistic map of the score standardized on the fold's training rows, "
        "so their AUROC/AUPRC are the signature's own but their Brier score is not meaningful.",
        "",
    ]
    if len(search_log):
        seconds = search_log.groupby("model")["seconds"].sum().sort_values(ascending=False)
        lines.append(
            "Fit time per model (search + refit + out-of-fold threshold, summed over folds): "
            + ", ".join(f"{m} {s:.0f} s" for m, s in seconds.items())
        )
        lines.append("")
    lines.append(summary_markdown(overall, cohort_table, comparisons))
    return "\n".join(lines)


def _placeholder_figure(message: str) -> Figure:
    figure = Figure(figsize=(6, 2))
    figure.text(0.5, 0.5, message, ha="center", va="center")
    return figure


def plot_protocol_figures(
    cohort_table: pd.DataFrame, predictions: pd.DataFrame, protocol: str
) -> tuple[Figure, Figure]:
    """Per-cohort AUROC with CIs and pooled ROC/PR curves of one protocol
    (a note if it was not run)."""
    from icb_kedro.reporting.plots import plot_cohort_auroc, plot_roc_pr_curves

    if not (predictions["protocol"] == protocol).any():
        note = _placeholder_figure(f"protocol '{protocol}' was not run in this configuration")
        return note, _placeholder_figure(f"protocol '{protocol}' was not run in this configuration")
    return plot_cohort_auroc(cohort_table, protocol), plot_roc_pr_curves(predictions, protocol)


def plot_overall(overall: pd.DataFrame) -> Figure:
    """Unweighted mean AUROC over cohorts per model and protocol."""
    from icb_kedro.reporting.plots import plot_overall_auroc

    return plot_overall_auroc(overall)
