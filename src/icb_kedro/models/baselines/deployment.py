"""The deployed baseline: which family is registered, and its refit on every labelled patient.

:func:`choose_deployment_family` picks the family under ``baselines.registry`` (the best
mean held-out ``loco`` AUROC among ``DEPLOYABLE_FAMILIES``, or a named family);
:func:`refit_deployment_baseline` refits it on all labelled rows of the panel with the same
pipeline, inner-CV search and threshold rule as a fold and wraps it as the MLflow pyfunc
registered as ``icb_baseline`` (``models.baselines.pyfunc.BaselinePyfunc``).
"""

from __future__ import annotations

import logging

import pandas as pd

from icb_kedro.models.baselines.estimators import model_spec_from_params
from icb_kedro.models.baselines.fold_fit import fit_predict_fold, params_to_json
from icb_kedro.models.baselines.fold_tables import fit_settings, labelled_matrix
from icb_kedro.models.baselines.parameters import BaselinesConfig
from icb_kedro.schema import COHORT

logger = logging.getLogger(__name__)

#: Families the deployed baseline is chosen from (the CNN belongs to AMU's study setting).
DEPLOYABLE_FAMILIES: tuple[str, ...] = ("logreg", "svm", "rf", "adaboost", "xgboost", "mlp")


def choose_deployment_family(
    cohort_table: pd.DataFrame, config: BaselinesConfig
) -> tuple[str, float, int]:
    """(family, its mean AUROC over held-out cohorts, number of cohorts) under
    ``baselines.registry``: ``model: best`` = the enabled family with the highest mean
    ``selection_protocol`` (zero-shot ``loco``) AUROC; or a family name."""
    protocol = config.registry.selection_protocol
    enabled = [m for m in DEPLOYABLE_FAMILIES if m in config.models and config.models[m].enabled]
    rows = cohort_table[
        (cohort_table["protocol"] == protocol) & cohort_table["model"].isin(enabled)
    ]
    means = rows.groupby("model")["auroc_mean"].agg(["mean", "count"]).dropna()
    if means.empty:
        raise ValueError(
            f"baselines.registry: no {protocol!r} results of the families {enabled} to choose the "
            "deployed baseline from"
        )
    wanted = config.registry.model
    if wanted == "best":
        wanted = str(means["mean"].idxmax())
    elif wanted not in means.index:
        raise ValueError(
            f"baselines.registry.model {wanted!r} has no {protocol!r} results; "
            f"choose one of {sorted(means.index)} or 'best'"
        )
    return wanted, float(means.loc[wanted, "mean"]), int(means.loc[wanted, "count"])


def refit_deployment_baseline(
    features: pd.DataFrame, cohort_table: pd.DataFrame, config: BaselinesConfig
):
    """The registered baseline (``icb_baseline``): the chosen family refitted on every labelled
    patient of the panel, with the same pipeline, inner-CV search and threshold rule as a fold.

    Choosing the family on held-out results and then refitting on all rows is the usual
    deployment step; the held-out numbers it was chosen by describe the recipe, not this fit.
    """
    from icb_kedro.models.baselines.pyfunc import BaselinePyfunc

    family, mean_auroc, n_cohorts = choose_deployment_family(cohort_table, config)
    spec = model_spec_from_params(family, config.models[family])
    table, labels = labelled_matrix(features)
    labelled = labels.notna().to_numpy()
    x, y = table.to_numpy(float)[labelled], labels[labelled].to_numpy(int)
    settings = fit_settings(config)
    seed = int(config.registry.seed) + int(settings.seed_offset)
    fit = fit_predict_fold(
        spec,
        x,
        y,
        x[:1],
        seed=seed,
        inner_splits=settings.inner_cv_splits,
        n_jobs=settings.n_jobs,
        threshold_method=settings.threshold_method,
        threshold_source=settings.threshold_source,
        n_features=settings.n_features,
        calibration=settings.calibration,
    )
    cohorts = sorted(features.loc[labelled, COHORT].unique())
    protocol = config.registry.selection_protocol
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
