"""Published signatures on the shared folds: coverage, per-sample scores, per-fold predictions.

Signatures need no training: each sample is scored once (cohort panel:
:func:`cohort_signature_scores`; AMU matrix: :func:`score_signatures_on_amu_matrix`) and
every fold's test rows get a "prediction" whose location/scale and decision threshold are
fitted on that fold's training rows only (the same test rows as the models, LODOCV folds
and ``amu_holdout`` folds). The coverage tables say which signatures are scored on the
cohort panel and on the AMU matrix, and why the others are not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from icb_kedro.evaluation.metrics import fit_threshold
from icb_kedro.evaluation.protocols import AMU_PROTOCOL, FoldSpec, iter_amu_holdout_folds
from icb_kedro.models.baselines.fold_tables import (
    amu_log_features,
    fold_arrays,
    lodocv_folds_of,
    stack_predictions,
)
from icb_kedro.models.baselines.parameters import BaselinesConfig, Signatures
from icb_kedro.models.baselines.signature_coverage import signature_coverage
from icb_kedro.models.baselines.signatures import (
    MODEL_PREFIX,
    fit_score_scale,
    score_signatures,
    scores_to_probability,
)
from icb_kedro.panels import select_panel_features
from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY, prediction_frame

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- cohort panel


def panel_signature_coverage(
    signatures: pd.DataFrame, gene_panels: pd.DataFrame, settings: Signatures
) -> pd.DataFrame:
    """``signature_coverage``: which signatures are scored on the panel, which fail and why
    (``settings`` = ``params:baselines.signatures``)."""
    genes = gene_panels.loc[gene_panels["panel"] == settings.panel, "gene"].tolist()
    if not genes:
        raise ValueError(f"signature panel {settings.panel!r} is empty or unknown")
    include = settings.include_below_coverage
    coverage = signature_coverage(
        signatures,
        genes,
        float(settings.min_coverage),
        None if include is None else list(include),
    )
    failed = coverage[coverage["status"] == "failed"]
    logger.info(
        "signatures: %d scored, %d failed the coverage rule",
        len(coverage) - len(failed),
        len(failed),
    )
    return coverage


def cohort_signature_scores(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    signatures: pd.DataFrame,
    coverage: pd.DataFrame,
    settings: Signatures,
) -> pd.DataFrame:
    """Every sample's score for every scored signature: ``sample_key, cohort, label,
    sig_<NAME>...`` (``settings`` = ``params:baselines.signatures``).

    Scores are per sample (ssGSEA ranks genes within a sample; weighted means use the
    label-free within-cohort z-scores), so they are computed once and reused by every fold.
    """
    raw = select_panel_features(harmonized_expression, gene_panels, settings.panel).set_index(
        SAMPLE_KEY
    )
    z = select_panel_features(expression_standardized, gene_panels, settings.panel).set_index(
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
        min_subset_coverage=float(settings.min_coverage),
        ssgsea_weight=float(settings.ssgsea_weight),
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
        return stack_predictions([])
    scores = signature_scores.set_index(SAMPLE_KEY)
    labels = scores[LABEL]
    parts = []
    for fold in tqdm(list(folds), desc=description, unit="fold", leave=False):
        _, y_train, _, y_test = fold_arrays(scores[names], labels, fold)
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
    return stack_predictions(parts)


def lodocv_signature_predictions(
    signature_scores: pd.DataFrame, lodocv_folds: pd.DataFrame, config: BaselinesConfig
) -> pd.DataFrame:
    """Signature "predictions" on every LODOCV fold's test rows (same rows as the models).

    Per fold, the score's location/scale (label-free) and the decision threshold are fitted
    on the fold's training rows; ``y_prob`` = sigmoid of the standardized score (a monotone
    map: AUROC/AUPRC are the signature's own; Brier is not meaningful, see signatures.py).
    """
    lodocv = [p for p in config.protocols if p != AMU_PROTOCOL]
    if not lodocv or not any(c.startswith(MODEL_PREFIX) for c in signature_scores.columns):
        return stack_predictions([])
    folds = lodocv_folds_of(lodocv_folds, lodocv, config)
    return _signature_fold_predictions(
        signature_scores, folds, config.threshold.method, "baselines signatures"
    )


# --------------------------------------------------------------------- signatures on the AMU matrix
# Signatures need no training, so they are scored in every protocol on the same test rows,
# the AMU study setting included (issue 3): its 160 genes, as ln(constituent ratio + pseudo_count).

# Methods that cannot be computed on log constituent ratios (all negative): COX_IS divides
# mean log expression of two gene groups, which needs non-negative log2(TPM+1).
AMU_UNSCORABLE_METHODS: dict[str, str] = {
    "cox_is": "COX_IS divides mean log2(TPM+1) of two gene groups; the AMU matrix holds "
    "constituent ratios (their logs are negative), so the ratio is undefined",
}


def _amu_genes(amu_matrix: pd.DataFrame) -> list[str]:
    """Gene columns of the ingested AMU matrix (every column but ``sample_key``/``label``)."""
    return [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL, COHORT)]


def amu_signature_coverage(
    signatures: pd.DataFrame, amu_matrix: pd.DataFrame, settings: Signatures
) -> pd.DataFrame:
    """``baselines_amu_signature_coverage``: the coverage table against the AMU matrix's genes.

    Same rule as :func:`panel_signature_coverage` (> ``min_coverage`` of a signature's genes
    among the AMU matrix's columns); ``include_below_coverage`` is NOT applied, as it is a
    choice made for the cohort panel (IMPRES has 8 complete pairs there, 3 here). Methods
    that log ratios cannot feed (COX_IS) fail with the reason.
    """
    genes = _amu_genes(amu_matrix)
    if not genes:
        raise ValueError(f"amu_matrix has no gene columns; it has {list(amu_matrix.columns)}")
    coverage = signature_coverage(signatures, genes, float(settings.min_coverage))
    for method, reason in AMU_UNSCORABLE_METHODS.items():
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


def score_signatures_on_amu_matrix(
    amu_matrix: pd.DataFrame,
    signatures: pd.DataFrame,
    amu_coverage: pd.DataFrame,
    config: BaselinesConfig,
) -> pd.DataFrame:
    """Every AMU sample's score for every signature scored on the AMU matrix.

    Same layout as :func:`cohort_signature_scores` (``sample_key, cohort, label, sig_<NAME>...``,
    cohort ``"AMU"``). Inputs of :func:`score_signatures`: the "log expression" is
    ln(ratio + ``config.amu_holdout.pseudo_count``), the models' AMU encoding (per sample,
    ranks are those of the TPM values: a constituent ratio is a sample's TPM over its sum);
    the z-scores are those log ratios standardized per gene over all AMU samples (label-free;
    the AMU matrix is one cohort, as the cohorts are standardized within themselves).
    ssGSEA ranks the z-scores within each sample, as on the cohorts.
    """
    table = amu_log_features(amu_matrix, float(config.amu_holdout.pseudo_count)).set_index(
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
    settings = config.signatures
    scores = score_signatures(
        logged,
        z,
        table[COHORT],
        signatures,
        amu_coverage,
        min_subset_coverage=float(settings.min_coverage),
        ssgsea_weight=float(settings.ssgsea_weight),
    )
    return pd.concat([table[[COHORT, LABEL]], scores], axis=1).reset_index()


def amu_signature_predictions(
    amu_signature_scores: pd.DataFrame, amu_holdout_folds: pd.DataFrame, config: BaselinesConfig
) -> pd.DataFrame:
    """Signature "predictions" on every ``amu_holdout`` fold's test rows (the models' rows).

    As on the LODOCV folds: location/scale and threshold fitted on the fold's training rows;
    protocol ``amu_holdout``, cohort ``"AMU"``. Empty when ``amu_holdout`` is not a
    configured protocol or no signature passed the coverage rule on the AMU matrix.
    """
    if AMU_PROTOCOL not in config.protocols or not any(
        c.startswith(MODEL_PREFIX) for c in amu_signature_scores.columns
    ):
        return stack_predictions([])
    folds = iter_amu_holdout_folds(amu_holdout_folds, config.amu_holdout.n_trials)
    return _signature_fold_predictions(
        amu_signature_scores, folds, config.threshold.method, "baselines signatures (AMU)"
    )
