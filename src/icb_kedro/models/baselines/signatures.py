"""Published ICB gene signatures: training-free scoring and the map of scores to probabilities.

Methods (``SCORING_METHODS``), all computed per sample, so scores need no training and
can be computed once for every sample and reused in every fold (no leakage possible):

- ``ssgsea``: single-sample GSEA (Barbie et al. 2009) of a plain gene list with gseapy
  (an in-memory gene-set dict, offline). INFO says ``GSVA``: GSVA estimates a kernel CDF
  of each gene *across samples*, so a sample's score depends on which other samples are
  in the matrix; ssGSEA ranks genes within one sample only, so it is leak-free and
  fold-independent. It runs on the within-cohort z-scored matrix, as PredictioR runs
  GSVA on its gene-wise z-scored matrix (signatures_and_statistics.md, section 3).
- ``weighted_mean``: sum of (within-cohort gene z-score x +-1 weight) / number of
  signature genes present (PredictioR ``geneSigMean``).
- ``cox_is``: mean log2(TPM+1) of the +1 genes divided by the mean of the -1 genes, then
  z-scored within the cohort (PredictioR ``geneSigCOX_IS``; it used log2(TPM+0.001), whose
  negative values make a ratio meaningless, so the non-negative log2(TPM+1) is used here).
- ``ipres``: mean over the qualifying sub-sets of their ssGSEA scores (``geneSigIPRES``).
- ``impres_pairs``: IMPRES as published (Auslander 2018; EaSIeR ``compute_IMPRES_MSI``):
  the number of the 15 checkpoint gene pairs with expr(A) > expr(B) on log2(TPM+1),
  rescaled to 15 pairs when some are absent (EaSIeR's rule). INFO lists IMPRES as a
  +-1 weighted mean of 28 genes; that version is not the published score (and scores
  AUC 0.40 here, signatures_and_statistics.md section 3), so the pairs replace it.

Direction: ``resistance`` signatures are multiplied by -1 so that a higher score always
means "more likely responder".

The signature table these scorers read is parsed in
:mod:`icb_kedro.models.baselines.signature_files`; which signatures are scored is decided
by :mod:`icb_kedro.models.baselines.signature_coverage`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

from icb_kedro.models.baselines.signature_files import IMPRES_PAIRS

logger = logging.getLogger(__name__)

SCORING_METHODS: tuple[str, ...] = (
    "ssgsea",
    "weighted_mean",
    "cox_is",
    "ipres",
    "impres_pairs",
    "ips",
    "tide",
)
MODEL_PREFIX = "sig_"


# ----------------------------------------------------------------------------- scoring
# Every scorer takes sample-major frames (rows = samples, columns = genes)
# and returns one float per sample (a pd.Series on the same index), before direction.


def ssgsea_scores(
    expression: pd.DataFrame,
    gene_sets: Mapping[str, list[str]],
    weight: float = 0.25,
    threads: int = 1,
) -> pd.DataFrame:
    """Raw ssGSEA enrichment scores (gseapy, ``ES`` column), samples x gene sets.

    Genes are ranked within each sample over all columns of ``expression``; the score of
    a sample depends on that sample only. ``ES`` (not ``NES``): gseapy's NES divides by
    the range of ES over all samples in the call, i.e. depends on the other samples.
    """
    import gseapy  # lazy: gseapy pulls in plotting modules

    sets = {
        name: [g for g in genes if g in expression.columns] for name, genes in gene_sets.items()
    }
    empty = [name for name, genes in sets.items() if not genes]
    if empty:
        raise ValueError(f"ssGSEA gene sets with no gene in the expression matrix: {empty}")
    if expression.isna().any().any():
        raise ValueError("ssGSEA input has missing values")
    result = gseapy.ssgsea(
        data=expression.T,  # gseapy wants genes x samples
        gene_sets=sets,
        outdir=None,
        sample_norm_method="rank",
        correl_norm_type="rank",
        min_size=1,
        max_size=100_000,
        permutation_num=0,
        weight=weight,
        no_plot=True,
        threads=threads,
        seed=0,
        verbose=False,
    )
    scores = result.res2d.pivot(index="Name", columns="Term", values="ES").astype(float)
    scores = scores.reindex(index=expression.index.astype(str), columns=list(sets))
    if scores.isna().any().any():
        raise ValueError("gseapy returned no score for some (sample, gene set) pairs")
    scores.index = expression.index
    return scores


def weighted_mean_score(zscores: pd.DataFrame, weights: Mapping[str, float]) -> pd.Series:
    """sum(z_gene x weight) / number of present signature genes (PredictioR geneSigMean)."""
    present = [g for g in weights if g in zscores.columns]
    if not present:
        raise ValueError("weighted mean: no signature gene in the expression matrix")
    w = np.array([weights[g] for g in present], dtype=float)
    return pd.Series(zscores[present].to_numpy() @ w / len(present), index=zscores.index)


def cox_is_ratio(log_expression: pd.DataFrame, weights: Mapping[str, float]) -> pd.Series:
    """mean log2(TPM+1) of the +1 (COX/inflammatory) genes / mean of the -1 (effector) genes."""
    up = [g for g, w in weights.items() if w > 0 and g in log_expression.columns]
    down = [g for g, w in weights.items() if w < 0 and g in log_expression.columns]
    if not up or not down:
        raise ValueError(
            f"COX_IS needs genes of both signs; present: {len(up)} positive, {len(down)} negative"
        )
    numerator = log_expression[up].mean(axis=1)
    denominator = log_expression[down].mean(axis=1)
    zero = denominator <= 0
    if zero.any():
        raise ValueError(
            "COX_IS undefined: effector genes all undetected in samples "
            f"{denominator.index[zero].tolist()[:5]}"
        )
    return numerator / denominator


def impres_pair_count(
    log_expression: pd.DataFrame, pairs: tuple[tuple[str, str], ...] = IMPRES_PAIRS
) -> pd.Series:
    """Number of (higher, lower) pairs with expr(higher) > expr(lower), rescaled to ``len(pairs)``.

    Pairs with a missing gene are skipped and the count is scaled by
    ``len(pairs) / n_available`` (EaSIeR's rule), so scores stay on the 0-15 scale.
    """
    available = [
        (a, b) for a, b in pairs if a in log_expression.columns and b in log_expression.columns
    ]
    if not available:
        raise ValueError("IMPRES: no complete gene pair in the expression matrix")
    higher = log_expression[[a for a, _ in available]].to_numpy()
    lower = log_expression[[b for _, b in available]].to_numpy()
    count = (higher > lower).sum(axis=1)
    return pd.Series(count * len(pairs) / len(available), index=log_expression.index, dtype=float)


def zscore_within_groups(values: pd.Series, groups: pd.Series) -> pd.Series:
    """z-score of ``values`` within each group (population sd; constant groups -> 0)."""
    grouped = values.groupby(groups.to_numpy())
    centred = values - grouped.transform("mean")
    sd = grouped.transform(lambda v: v.std(ddof=0))
    return (centred / sd.where(sd > 0, 1.0)).where(sd > 0, 0.0)


def score_signatures(
    log_expression: pd.DataFrame,
    zscores: pd.DataFrame,
    cohorts: pd.Series,
    signatures: pd.DataFrame,
    coverage: pd.DataFrame,
    min_subset_coverage: float = 0.8,
    ssgsea_weight: float = 0.25,
) -> pd.DataFrame:
    """Scores (samples x ``sig_<NAME>``) of every signature whose coverage status starts with
    ``scored``.

    ``log_expression``: log2(TPM+1); ``zscores``: the same samples z-scored per gene within
    each cohort; both sample-major with the same index; ``cohorts``: cohort of each sample
    (for COX_IS's within-cohort z-score). Resistance signatures are multiplied by -1, so a
    higher score always means "more likely responder".
    """
    if not log_expression.index.equals(zscores.index) or not log_expression.index.equals(
        cohorts.index
    ):
        raise ValueError("log_expression, zscores and cohorts must share the same sample index")
    chosen = coverage.loc[coverage["status"].str.startswith("scored"), "signature"].tolist()
    by_name = {name: rows[rows["gene"] != ""] for name, rows in signatures.groupby("signature")}
    missing = sorted(set(chosen) - set(by_name))
    if missing:
        raise ValueError(
            f"coverage table names signatures absent from the signature table: {missing}"
        )

    # One ssGSEA call for every plain list and every qualifying IPRES sub-set.
    gene_sets: dict[str, list[str]] = {}
    ipres_subsets: dict[str, list[str]] = {}
    for name in chosen:
        rows = by_name[name]
        method = rows["method"].iloc[0]
        if method == "ssgsea":
            gene_sets[name] = list(dict.fromkeys(rows["gene"]))
        elif method == "ipres":
            for subset, sub in rows.groupby("subset", sort=True):
                present = sub["gene"].isin(zscores.columns).mean()
                if present >= min_subset_coverage:
                    key = f"{name}::{subset}"
                    gene_sets[key] = list(dict.fromkeys(sub["gene"]))
                    ipres_subsets.setdefault(name, []).append(key)
    enrichment = (
        ssgsea_scores(zscores, gene_sets, weight=ssgsea_weight)
        if gene_sets
        else pd.DataFrame(index=zscores.index)
    )

    scores = {}
    for name in chosen:
        rows = by_name[name]
        method = rows["method"].iloc[0]
        weights = dict(zip(rows["gene"], rows["weight"]))
        if method == "ssgsea":
            raw = enrichment[name]
        elif method == "ipres":
            raw = enrichment[ipres_subsets[name]].mean(axis=1)
        elif method == "weighted_mean":
            raw = weighted_mean_score(zscores, weights)
        elif method == "cox_is":
            raw = zscore_within_groups(cox_is_ratio(log_expression, weights), cohorts)
        elif method == "impres_pairs":
            raw = impres_pair_count(log_expression)
        else:
            raise ValueError(f"signature {name!r}: method {method!r} cannot be scored here")
        direction = -1.0 if rows["association"].iloc[0] == "resistance" else 1.0
        scores[MODEL_PREFIX + name] = direction * raw.astype(float)
    return pd.DataFrame(scores, index=log_expression.index)


# ----------------------------------------------------------------------------- to probabilities


def fit_score_scale(train_scores: np.ndarray) -> tuple[float, float]:
    """Location and scale of a signature score on a fold's TRAINING rows (label-free).

    Used by :func:`scores_to_probability`: a fixed signature is a ranking rule, so it is
    not refitted on labels (a logistic regression could flip its published direction);
    only its scale is set so that probabilities are spread around 0.5.
    """
    values = np.asarray(train_scores, dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("signature scores of the training rows must be finite and non-empty")
    sd = float(values.std())
    return float(values.mean()), sd if sd > 0 else 1.0


def scores_to_probability(scores: np.ndarray, location: float, scale: float) -> np.ndarray:
    """sigmoid((score - location) / scale): monotone, so AUROC/AUPRC are the score's own.

    The result is NOT a calibrated probability: Brier scores of signature "models" are
    reported for completeness but are not meaningful.
    """
    from scipy.special import expit  # overflow-safe logistic

    return expit((np.asarray(scores, dtype=float) - location) / scale)
