"""SHAP for the classical baselines: SVM / XGBoost refitted on each fold's training rows
exactly as the baselines pipeline fits them (its logged best hyper-parameters), explained
on that fold's test rows with a training-row background."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import iter_protocol_folds
from icb_kedro.interpretation import shap_analysis
from icb_kedro.interpretation.shap_tables import empty_shap_table, explain_rows, shap_frame
from icb_kedro.models.baselines.parameters import BaselinesConfig
from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY

if TYPE_CHECKING:
    from icb_kedro.pipelines.interpretation.config import Shap, ShapRun

logger = logging.getLogger(__name__)


def _baseline_features(
    expression: pd.DataFrame, gene_panels: pd.DataFrame, panel: str
) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    # The same panel selection (and checks) as the baselines pipeline the models came from.
    from icb_kedro.panels import select_panel_features

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


def setting_params(
    shap: Shap | Mapping[str, Any], setting: str, model: str | None = None
) -> dict[str, Any]:
    """:meth:`Shap.run <icb_kedro.pipelines.interpretation.config.Shap.run>` (the shared SHAP
    settings, one setting's block, then ``per_model.<model>``) as a plain dict, for logs and
    callers holding the raw block; the explainers use ``Shap.run`` itself."""
    from icb_kedro.pipelines.interpretation.config import Shap

    return Shap.of(shap, "params:interpretation.shap").run(setting, model).model_dump()


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
    estimator: Any, x_train: np.ndarray, x_rows: np.ndarray, settings: ShapRun, seed: int
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
        n_background=settings.n_background,
        nsamples=settings.nsamples,
        l1_reg=settings.l1_reg,
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
    baselines_params: Mapping[str, Any] | BaselinesConfig,
    shap: Shap,
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
        log_ratio_features,
        model_spec_from_params,
    )
    from icb_kedro.models.baselines.fold_fit import fit_predict_fold

    settings = shap.run(setting, model)
    # The baselines' own typed block: the same settings the baselines pipeline fitted with.
    config = BaselinesConfig.of(baselines_params, "params:baselines")
    model_params = config.models.get(model)
    if model_params is None:
        raise ValueError(f"baselines.models has no entry {model!r}; it has {sorted(config.models)}")
    if setting == "study":
        genes = [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL)]
        pseudo_count = config.amu_holdout.pseudo_count
        features = pd.DataFrame(
            log_ratio_features(amu_matrix[genes].to_numpy(float), pseudo_count),
            index=amu_matrix[SAMPLE_KEY].to_numpy(),
            columns=genes,
        )
        labels = amu_matrix.set_index(SAMPLE_KEY)[LABEL]
        folds = iter_amu_holdout_folds(amu_holdout_folds, settings.n_trials)
        smote = config.amu_holdout.smote
        n_features = config.amu_holdout.n_features  # as the baselines pipeline: all 160
    else:
        features, labels, genes = _baseline_features(expression, gene_panels, config.panel)
        folds = iter_protocol_folds(
            lodocv_folds, [settings.protocol], 1, max_trials=settings.n_trials
        )
        smote = False
        n_features = config.n_features
    if model not in settings.models:
        return empty_shap_table(genes)
    wanted = settings.cohorts
    parts = []
    for fold in folds:
        if wanted and fold.held_out not in wanted:
            continue
        seed = int(fold.seed) + config.seed_offset
        spec = model_spec_from_params(model, model_params)
        logged = _logged_best_params(search_log, model, fold.protocol, fold.held_out, fold.trial)
        x_train = features.loc[fold.train_keys].to_numpy(float)
        y_train = labels.loc[fold.train_keys].astype(int).to_numpy()
        rows = explain_rows(fold.test_keys, labels, settings.max_explain_rows, seed)
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
            inner_splits=config.inner_cv.n_splits,
            n_jobs=config.n_jobs,
            # The threshold is not used here: in-sample skips the out-of-fold refits.
            threshold_method=config.threshold.method,
            threshold_source="in_sample",
        )
        estimator = fit.estimator
        if spec.family == "xgboost":
            values = _tree_shap_through_pipeline(estimator, x_rows, CLASSIFIER_STEP)
        else:
            values = _kernel_shap_over_selected_genes(estimator, x_train, x_rows, settings, seed)
        parts.append(
            shap_frame(
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
