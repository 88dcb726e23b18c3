"""SHAP attributions of fitted models on a fold's TEST rows, and gene rankings from them.

Leak-free by construction: callers pass a model fitted on the fold's training rows, a
background sample drawn from those training rows, and the fold's test rows to explain.

- Tree models (XGBoost): :func:`tree_shap_values` (``shap.TreeExplainer``, exact, in the
  model's margin = log-odds units).
- Anything else (SVM, AMU, IC2Bert): :func:`kernel_shap_values` on a ``predict_fn`` that
  maps an expression matrix [n, p] to P(responder) [n] (``shap.KernelExplainer`` with a
  ``shap.kmeans`` summary of the training background; cost ~ n_explain x nsamples x
  n_background model evaluations, so both sizes come from parameters).

Rankings: genes by mean |SHAP| over the explained rows (:func:`shap_gene_ranking`); top-k
lists and their intersection across models (:func:`top_gene_overlap`); how stable a top-k
list is (:func:`top_k_stability`: bootstrap of the explained rows and agreement across folds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from threadpoolctl import threadpool_limits

PredictFn = Callable[[np.ndarray], np.ndarray]
RANKING_COLUMNS: tuple[str, ...] = ("gene", "mean_abs_shap", "mean_shap", "direction", "rank")
STABILITY_COLUMNS: tuple[str, ...] = (
    "gene",
    "rank",
    "bootstrap_top_k",
    "rank_ci_low",
    "rank_ci_high",
    "fold_top_k",
    "n_folds",
    "n_rows",
    "k",
    "n_boot",
)


def _as_matrix(
    values: np.ndarray | pd.DataFrame,
    name: str,
    n_features: int | None = None,
    allow_nan: bool = False,
) -> np.ndarray:
    matrix = np.asarray(values, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [samples, genes] matrix, got shape {matrix.shape}")
    if matrix.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if n_features is not None and matrix.shape[1] != n_features:
        raise ValueError(f"{name} has {matrix.shape[1]} gene columns, expected {n_features}")
    bad = np.isinf(matrix) if allow_nan else ~np.isfinite(matrix)
    if bad.any():
        raise ValueError(
            f"{name} holds {int(bad.sum())} {'inf' if allow_nan else 'NaN/inf'} values"
        )
    return matrix


@contextmanager
def _numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for one call and restore it afterwards.

    ``shap.KernelExplainer`` draws its coalitions from ``np.random`` (no seed argument in
    shap 0.51); this keeps its results reproducible without leaving global state changed.
    """
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def kernel_shap_values(
    predict_fn: PredictFn,
    background: np.ndarray | pd.DataFrame,
    explain: np.ndarray | pd.DataFrame,
    *,
    n_background: int = 20,
    nsamples: int | str = 200,
    l1_reg: str | float | bool = "num_features(20)",
    seed: int = 0,
) -> np.ndarray:
    """Kernel SHAP values [n_explain, p] of ``predict_fn`` (P(responder)) on ``explain`` rows.

    ``background`` must be TRAINING rows of the fold; it is summarised by ``shap.kmeans``
    into ``n_background`` weighted centroids (fewer if it has fewer rows). Each row's SHAP
    values sum to ``predict_fn(row) - E_background[predict_fn]``. ``nsamples="auto"`` is
    shap's own budget, 2p + 2048 coalitions (p = number of features).
    """
    import shap

    train = _as_matrix(background, "background")
    rows = _as_matrix(explain, "explain", train.shape[1])
    if nsamples == "auto":
        nsamples = 2 * train.shape[1] + 2048
    if n_background < 1 or int(nsamples) < 1:
        raise ValueError(
            "n_background and nsamples must be >= 1 (or nsamples 'auto'), "
            f"got {n_background} and {nsamples}"
        )

    def probability(x: np.ndarray) -> np.ndarray:
        out = np.asarray(predict_fn(np.asarray(x, dtype=float)), dtype=float).reshape(-1)
        if out.shape[0] != len(x):
            raise ValueError(
                f"predict_fn returned {out.shape[0]} values for {len(x)} rows; "
                "it must return P(responder) per row"
            )
        return out

    k = min(int(n_background), len(train))
    # One BLAS/OpenMP thread for the k-means summary: on the shared 2-core machine the
    # default threading oversubscribed and ran ~15x slower; the result is the same.
    with threadpool_limits(1):
        summary = shap.kmeans(train, k) if k < len(train) else train
    with _numpy_global_seed(seed):
        explainer = shap.KernelExplainer(probability, summary)
        values = explainer.shap_values(rows, nsamples=int(nsamples), l1_reg=l1_reg, silent=True)
    return np.asarray(values, dtype=float).reshape(rows.shape)


def tree_shap_values(model: object, explain: np.ndarray | pd.DataFrame) -> np.ndarray:
    """Exact TreeSHAP values [n_explain, p] of a fitted tree ensemble
    (log-odds units for XGBoost)."""
    import shap

    rows = _as_matrix(explain, "explain")
    values = shap.TreeExplainer(model).shap_values(rows)
    values = np.asarray(values, dtype=float)
    if values.ndim == 3:  # [n, p, classes] for multi-output models: keep the responder class
        values = values[..., -1]
    if values.shape != rows.shape:
        raise ValueError(f"TreeExplainer returned shape {values.shape} for {rows.shape} rows")
    return values


def _columnwise_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``a`` with the same column of ``b``, over the rows where
    ``a`` is measured (NaN in ``a`` = a gene that row's cohort does not measure); NaN where
    one side is constant or fewer than 2 rows are measured."""
    measured = np.isfinite(a)
    n = measured.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(measured, a - np.where(measured, a, 0.0).sum(axis=0) / n, 0.0)
        b = np.where(measured, b - np.where(measured, b, 0.0).sum(axis=0) / n, 0.0)
        denominator = np.sqrt((a**2).sum(axis=0) * (b**2).sum(axis=0))
        r = (a * b).sum(axis=0) / denominator
    return np.where((denominator > 0) & (n >= 2), r, np.nan)


def shap_gene_ranking(
    shap_values: np.ndarray | pd.DataFrame,
    genes: Sequence[str],
    features: np.ndarray | pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Genes ranked by mean |SHAP| over the explained rows (rank 1 = most important).

    ``direction`` is the Pearson r between a gene's expression and its SHAP values over the
    explained rows that measure it (> 0: higher expression pushes towards response); NaN
    without ``features``. ``features`` may hold NaN (a gene the row's cohort does not
    measure; its SHAP value is 0 there). Ties in mean |SHAP| are broken by gene name, so the
    ranking is deterministic.
    """
    values = _as_matrix(shap_values, "shap_values", len(genes))
    if len(set(genes)) != len(genes):
        raise ValueError("genes must be unique")
    direction = np.full(len(genes), np.nan)
    if features is not None:
        data = _as_matrix(features, "features", len(genes), allow_nan=True)
        if data.shape != values.shape:
            raise ValueError(
                f"features shape {data.shape} differs from shap_values shape {values.shape}"
            )
        direction = _columnwise_correlation(data, values)
    table = pd.DataFrame(
        {
            "gene": list(genes),
            "mean_abs_shap": np.abs(values).mean(axis=0),
            "mean_shap": values.mean(axis=0),
            "direction": direction,
        }
    )
    table = table.sort_values(["mean_abs_shap", "gene"], ascending=[False, True], kind="mergesort")
    table["rank"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)[list(RANKING_COLUMNS)]


def top_genes(ranking: pd.DataFrame, k: int) -> list[str]:
    """The first ``k`` genes of a ranking table (by its ``rank`` column).

    Genes with zero attribution are never "top": with a ``mean_abs_shap`` column, only
    genes above 0 are returned (fewer than ``k`` if the model used fewer genes; none if its
    predictions were constant).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    missing = {"gene", "rank"} - set(ranking.columns)
    if missing:
        raise ValueError(f"ranking lacks columns {sorted(missing)}")
    ordered = ranking.sort_values("rank", kind="mergesort").head(k)
    if "mean_abs_shap" in ordered.columns:
        ordered = ordered[ordered["mean_abs_shap"] > 0]
    return ordered["gene"].tolist()


def _ranks(mean_abs: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """Rank (1 = largest) of each gene by mean |SHAP|, ties broken by gene name."""
    order = np.lexsort((genes, -mean_abs))
    ranks = np.empty(len(genes), dtype=int)
    ranks[order] = np.arange(1, len(genes) + 1)
    return ranks


def top_k_stability(
    shap_values: np.ndarray | pd.DataFrame,
    genes: Sequence[str],
    folds: Sequence[object],
    k: int = 20,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """How stable is "gene g is in the top k"? A single ranking cannot say.

    * ``bootstrap_top_k``: share of ``n_boot`` bootstrap resamples of the explained rows
      (drawn within each fold, so every fold keeps its weight) in which the gene is in the
      top ``k`` by mean |SHAP|; ``rank_ci_low/high``: the 2.5 / 97.5 % percentiles of its rank;
    * ``fold_top_k``: share of the folds (held-out cohort x trial; ``folds`` labels each row)
      whose own rows put it in their top ``k`` (agreement between independently trained models).

    Genes never in any top ``k`` (point estimate, resample or fold) are left out. Sorted by
    the point-estimate rank.
    """
    values = np.abs(_as_matrix(shap_values, "shap_values", len(genes)))
    folds = np.asarray([str(f) for f in folds])
    if len(folds) != len(values):
        raise ValueError(f"folds labels {len(folds)} rows, shap_values has {len(values)}")
    if k < 1 or n_boot < 1:
        raise ValueError(f"k and n_boot must be >= 1, got {k} and {n_boot}")
    names = np.asarray(list(genes), dtype=object)
    point = _ranks(values.mean(axis=0), names)
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(folds == f) for f in np.unique(folds)]
    boot_ranks = np.empty((n_boot, len(names)), dtype=int)
    for b in range(n_boot):
        rows = np.concatenate([rng.choice(m, size=len(m), replace=True) for m in members])
        boot_ranks[b] = _ranks(values[rows].mean(axis=0), names)
    in_boot = (boot_ranks <= k).mean(axis=0)
    fold_hits = np.zeros(len(names))
    for m in members:
        fold_hits += _ranks(values[m].mean(axis=0), names) <= k
    table = pd.DataFrame(
        {
            "gene": names,
            "rank": point,
            "bootstrap_top_k": in_boot,
            "rank_ci_low": np.percentile(boot_ranks, 2.5, axis=0),
            "rank_ci_high": np.percentile(boot_ranks, 97.5, axis=0),
            "fold_top_k": fold_hits / len(members),
            "n_folds": len(members),
            "n_rows": len(values),
            "k": k,
            "n_boot": n_boot,
        }
    )
    table = table[(table["rank"] <= k) | (table["bootstrap_top_k"] > 0) | (table["fold_top_k"] > 0)]
    return table.sort_values("rank", kind="mergesort").reset_index(drop=True)[
        list(STABILITY_COLUMNS)
    ]


def top_gene_overlap(rankings: Mapping[str, pd.DataFrame], k: int) -> pd.DataFrame:
    """For every gene in any model's top-k: how many and which models list it.

    Columns ``gene, n_models, models, in_all``; the intersection of the top-k lists is the
    rows with ``in_all`` True (the AMU paper reported TNF and TNFRSF1A there).
    """
    if not rankings:
        raise ValueError("top_gene_overlap needs at least one model ranking")
    membership: dict[str, list[str]] = {}
    for model in sorted(rankings):
        for gene in top_genes(rankings[model], k):
            membership.setdefault(gene, []).append(model)
    table = pd.DataFrame(
        {
            "gene": list(membership),
            "n_models": [len(m) for m in membership.values()],
            "models": [",".join(m) for m in membership.values()],
        }
    )
    table["in_all"] = table["n_models"] == len(rankings)
    return table.sort_values(
        ["n_models", "gene"], ascending=[False, True], kind="mergesort"
    ).reset_index(drop=True)


def plot_shap_beeswarm(
    shap_values: np.ndarray,
    features: np.ndarray,
    genes: Sequence[str],
    title: str,
    max_display: int = 20,
) -> Figure:
    """SHAP beeswarm (one dot per explained row and gene, coloured by expression)."""
    import shap

    values = _as_matrix(shap_values, "shap_values", len(genes))
    data = _as_matrix(features, "features", len(genes))
    if data.shape != values.shape:
        raise ValueError(
            f"features shape {data.shape} differs from shap_values shape {values.shape}"
        )
    explanation = shap.Explanation(values=values, data=data, feature_names=list(genes))
    n_shown = min(max_display, len(genes))
    fig = Figure(figsize=(7.5, 0.32 * n_shown + 1.8), layout="constrained")
    ax = fig.subplots()
    shap.plots.beeswarm(explanation, max_display=max_display, show=False, ax=ax, plot_size=None)
    ax.set_title(title)
    return fig


def plot_shap_bar(ranking: pd.DataFrame, title: str, max_display: int = 20) -> Figure:
    """Horizontal bars of mean |SHAP| for the top genes of a ranking table."""
    top = ranking.sort_values("rank", kind="mergesort").head(max_display).iloc[::-1]
    fig = Figure(figsize=(6.5, 0.3 * len(top) + 1.5), layout="constrained")
    ax = fig.subplots()
    direction = top["direction"] if "direction" in top else pd.Series(np.nan, index=top.index)
    colours = np.where(direction > 0, "#c0392b", np.where(direction < 0, "#2c7fb8", "#7f7f7f"))
    ax.barh(top["gene"], top["mean_abs_shap"], color=colours)
    ax.set_xlabel(
        "mean |SHAP| on test rows (red: high expression favours response; blue: the reverse)"
    )
    ax.set_title(title)
    return fig
