"""IC2Bert gene importance as in its paper (model_spec.md section 2.6), on real attention.

- Attention importance: the softmax attention probabilities of every layer and head
  ([..., L_query, L_key], rows sum to 1) are averaged over layers, heads, samples and
  query positions, giving the attention each gene (key position) receives, w_i; then
  I_att(i) = |w_i| / sum_j |w_j|. Spec item 15: the original code returned the block
  output under the name "attention_weights"; :func:`mean_attention_received` refuses
  anything that is not a probability distribution over keys.
- Permutation importance: mean over R permutations of AUROC_base - AUROC_perm(i) on the
  fold's TEST rows (scikit-learn's ``permutation_importance``), normalised by the sum of
  absolute values.
- Combined: 0.4 x attention + 0.6 x permutation (the paper's weights, parameters here).
- Table 7 of the paper: the frequency of each gene in the top-100/50/30/10 across
  held-out cohorts (:func:`top_k_frequency`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from icb_kedro.evaluation.metrics import as_binary_labels, auroc

PredictFn = Callable[[np.ndarray], np.ndarray]
IMPORTANCE_COLUMNS: tuple[str, ...] = ("gene", "attention", "permutation", "combined", "rank")
DEFAULT_TOP_K: tuple[int, ...] = (100, 50, 30, 10)
_PROBABILITY_TOLERANCE = 1e-3


def mean_attention_received(attention: np.ndarray) -> tuple[np.ndarray, int]:
    """Mean attention each key position receives, and how many query rows were averaged.

    ``attention`` has shape [..., L, L] (e.g. [layers, batch, heads, L, L]); the last axis
    indexes keys and must sum to 1 (softmax probabilities).
    """
    probs = np.asarray(attention, dtype=np.float64)
    if probs.ndim < 2 or probs.shape[-1] != probs.shape[-2]:
        raise ValueError(f"attention must have shape [..., L, L], got {probs.shape}")
    if not np.isfinite(probs).all():
        raise ValueError("attention holds NaN/inf values")
    row_sums = probs.sum(axis=-1)
    if (
        probs.min() < -_PROBABILITY_TOLERANCE
        or np.abs(row_sums - 1.0).max() > _PROBABILITY_TOLERANCE
    ):
        raise ValueError(
            "attention must be softmax probabilities (non-negative, each query row summing to 1 "
            f"over keys); got row sums in [{row_sums.min():.3g}, {row_sums.max():.3g}] and minimum "
            f"{probs.min():.3g}. Pass the attention probabilities, not the attention block "
            "output (spec item 15)."
        )
    length = probs.shape[-1]
    rows = probs.reshape(-1, length)
    return rows.mean(axis=0), rows.shape[0]


def normalise_importance(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    """``v_i / sum_j |v_j|`` (the paper's normalisation); all-zero input stays all zero."""
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).all():
        raise ValueError("importance values hold NaN/inf")
    total = np.abs(array).sum()
    return array / total if total > 0 else np.zeros_like(array)


def attention_importance(
    attention_batches: Iterable[np.ndarray], genes: Sequence[str]
) -> pd.Series:
    """I_att per gene from one or more batches of attention probabilities; sums to 1.

    Batches are weighted by the number of query rows they hold, so splitting the test
    rows into batches does not change the result.
    """
    total: np.ndarray | None = None
    count = 0
    for batch in attention_batches:
        mean, rows = mean_attention_received(batch)
        if len(mean) != len(genes):
            raise ValueError(
                f"attention covers {len(mean)} positions but {len(genes)} genes were given"
            )
        total = mean * rows if total is None else total + mean * rows
        count += rows
    if total is None:
        raise ValueError("attention_importance received no attention batches")
    return pd.Series(
        normalise_importance(total / count),
        index=pd.Index(list(genes), name="gene"),
        name="attention",
    )


def attention_importance_from_received(received: np.ndarray, genes: Sequence[str]) -> pd.Series:
    """I_att per gene from attention already reduced over layers, heads and query positions.

    ``received`` is [n_samples, L] or [L]: each row is a mean of softmax rows, so it must be
    non-negative and sum to 1 over the L genes (this rejects block outputs, spec item 15).
    """
    rows = np.atleast_2d(np.asarray(received, dtype=np.float64))
    if rows.ndim != 2 or rows.shape[1] != len(genes):
        raise ValueError(
            f"received attention must be [samples, {len(genes)}] or [{len(genes)}], "
            f"got {np.shape(received)}"
        )
    if not np.isfinite(rows).all():
        raise ValueError("received attention holds NaN/inf values")
    sums = rows.sum(axis=1)
    if rows.min() < -_PROBABILITY_TOLERANCE or np.abs(sums - 1.0).max() > _PROBABILITY_TOLERANCE:
        raise ValueError(
            "received attention rows must be averages of softmax probabilities (non-negative, "
            f"summing to 1); got sums in [{sums.min():.3g}, {sums.max():.3g}] (spec item 15: "
            "not the attention block output)"
        )
    return pd.Series(
        normalise_importance(rows.mean(axis=0)),
        index=pd.Index(list(genes), name="gene"),
        name="attention",
    )


class _FittedPredictor:
    """Adapter so scikit-learn's ``permutation_importance`` can call a plain predict function."""

    def __init__(self, predict_fn: PredictFn) -> None:
        self.predict_fn = predict_fn

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's signature; the model is already fitted
        return self


def permutation_auroc_drop(
    predict_fn: PredictFn,
    X: np.ndarray | pd.DataFrame,  # noqa: N803 - the usual name for a design matrix
    y: Sequence[int] | np.ndarray,
    genes: Sequence[str],
    *,
    n_repeats: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Per gene, the drop in test AUROC when that gene's column is permuted (mean/sd over R).

    ``X``/``y`` are the fold's TEST rows; ``predict_fn`` maps [n, p] to P(responder).
    Columns ``gene, auroc_drop, auroc_drop_sd, base_auroc``.
    """
    from sklearn.inspection import permutation_importance

    matrix = np.asarray(X, dtype=float)
    labels = as_binary_labels(y, "y")
    if matrix.ndim != 2 or matrix.shape[1] != len(genes):
        raise ValueError(f"X must be [samples, {len(genes)} genes], got shape {matrix.shape}")
    if len(labels) != len(matrix):
        raise ValueError(f"X has {len(matrix)} rows but y has {len(labels)} labels")
    if labels.min() == labels.max():
        raise ValueError(
            "permutation importance needs both classes among the test rows (AUROC undefined)"
        )
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be >= 1, got {n_repeats}")

    def auroc_scorer(
        estimator: _FittedPredictor, features: np.ndarray, target: np.ndarray
    ) -> float:
        return auroc(target, np.asarray(estimator.predict_fn(features), dtype=float).reshape(-1))

    result = permutation_importance(
        _FittedPredictor(predict_fn),
        matrix,
        labels,
        scoring=auroc_scorer,
        n_repeats=n_repeats,
        random_state=seed,
        n_jobs=1,
    )
    base = auroc_scorer(_FittedPredictor(predict_fn), matrix, labels)
    return pd.DataFrame(
        {
            "gene": list(genes),
            "auroc_drop": result.importances_mean,
            "auroc_drop_sd": result.importances_std,
            "base_auroc": base,
        }
    )


def combine_importance(
    attention: pd.Series,
    permutation: pd.Series,
    attention_weight: float = 0.4,
    permutation_weight: float = 0.6,
) -> pd.DataFrame:
    """``attention_weight x I_att + permutation_weight x I_perm`` per gene, ranked.

    Both inputs (indexed by gene, same genes) are normalised by the sum of their absolute
    values first, so the attention part sums to 1 and the permutation part has absolute
    sum 1 (a gene whose permutation raises AUROC gets a negative share).
    """
    if set(attention.index) != set(permutation.index) or len(attention) != len(permutation):
        missing = sorted(set(attention.index) ^ set(permutation.index))[:5]
        raise ValueError(
            f"attention and permutation importances cover different genes, e.g. {missing}"
        )
    if attention.index.has_duplicates:
        raise ValueError("importance tables must list each gene once")
    genes = list(attention.index)
    table = pd.DataFrame(
        {
            "gene": genes,
            "attention": normalise_importance(attention.loc[genes].to_numpy()),
            "permutation": normalise_importance(permutation.loc[genes].to_numpy()),
        }
    )
    table["combined"] = (
        attention_weight * table["attention"] + permutation_weight * table["permutation"]
    )
    table = table.sort_values(["combined", "gene"], ascending=[False, True], kind="mergesort")
    table["rank"] = np.arange(1, len(table) + 1)
    return table.reset_index(drop=True)[list(IMPORTANCE_COLUMNS)]


def top_k_frequency(
    importance: pd.DataFrame,
    ks: Sequence[int] = DEFAULT_TOP_K,
    score: str = "combined",
    group: str = "held_out",
) -> pd.DataFrame:
    """How many held-out cohorts put each gene in their top-k, for every k (paper Table 7).

    ``importance`` is long: one row per (``group``, gene) with a ``score`` column. Output
    columns ``gene, top<k>... , n_groups``, sorted by the smallest k's count first.
    """
    needed = {group, "gene", score}
    if not needed <= set(importance.columns):
        raise ValueError(f"importance lacks columns {sorted(needed - set(importance.columns))}")
    if importance.duplicated([group, "gene"]).any():
        raise ValueError(f"importance lists a gene twice within one {group}")
    ks = sorted({int(k) for k in ks}, reverse=True)
    if not ks or ks[-1] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    counts: dict[str, dict[int, int]] = {}
    groups = sorted(importance[group].unique())
    for name in groups:
        ordered = (
            importance[importance[group] == name]
            .sort_values([score, "gene"], ascending=[False, True], kind="mergesort")["gene"]
            .tolist()
        )
        for k in ks:
            for gene in ordered[:k]:
                counts.setdefault(gene, dict.fromkeys(ks, 0))[k] += 1
    table = pd.DataFrame([{"gene": g, **{f"top{k}": c[k] for k in ks}} for g, c in counts.items()])
    if table.empty:
        return pd.DataFrame(columns=["gene", *[f"top{k}" for k in ks], "n_groups"])
    table["n_groups"] = len(groups)
    order = [f"top{k}" for k in reversed(ks)]
    return table.sort_values(
        [*order, "gene"], ascending=[False] * len(order) + [True], kind="mergesort"
    ).reset_index(drop=True)


def plot_top_k_frequency(
    frequency: pd.DataFrame, k: int = 10, max_genes: int = 25, title: str = ""
) -> Figure:
    """Bars: in how many held-out cohorts each gene is in the top-k (most frequent genes)."""
    column = f"top{k}"
    if column not in frequency.columns:
        raise ValueError(
            f"frequency table has no {column} column; it has {list(frequency.columns)}"
        )
    top = (
        frequency.sort_values([column, "gene"], ascending=[False, True], kind="mergesort")
        .head(max_genes)
        .iloc[::-1]
    )
    fig = Figure(figsize=(6.5, 0.28 * len(top) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh(top["gene"], top[column], color="#4c72b0")
    n_groups = int(frequency["n_groups"].max()) if len(frequency) else 0
    ax.set_xlabel(f"held-out cohorts with the gene in their top-{k} (of {n_groups})")
    ax.set_title(title or f"IC2Bert combined importance: top-{k} frequency")
    return fig


def plot_importance_components(
    importance: pd.DataFrame, label_top: int = 10, title: str = ""
) -> Figure:
    """Scatter of attention vs permutation importance, top genes by combined score labelled."""
    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.subplots()
    ax.scatter(importance["attention"], importance["permutation"], s=10, alpha=0.6, color="#7f7f7f")
    top = importance.sort_values("combined", ascending=False, kind="mergesort").head(label_top)
    ax.scatter(top["attention"], top["permutation"], s=18, color="#c0392b")
    for _, row in top.iterrows():
        ax.annotate(
            row["gene"],
            (row["attention"], row["permutation"]),
            fontsize=7,
            xytext=(3, 2),
            textcoords="offset points",
        )
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("attention importance (share of attention received)")
    ax.set_ylabel("permutation importance (normalised AUROC drop)")
    ax.set_title(title or "IC2Bert importance components")
    return fig
