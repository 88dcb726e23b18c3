"""AMU gene embeddings (the learned 160 x 20 gene-identity table, model_spec.md 1.3).

What the AMU paper did with them: a t-SNE map judged "locally consistent with STRING".
Here, reproducibly and with a null model:

- Euclidean distances and cosine similarities between gene vectors (scipy);
- average-linkage hierarchical clustering on cosine distance (scipy);
- a t-SNE map (scikit-learn, seeded);
- each gene's nearest neighbours in embedding space, compared with (a) co-expression in
  the data and (b) co-membership in the shipped signature gene sets. The comparison is a
  label-permutation test: gene names are shuffled over the embedding rows, which keeps
  the neighbour graph but breaks its link to biology, so
  p = (1 + #{null >= observed}) / (1 + n_permutations).

The embedding comes from a model trained on training rows only; co-expression and
signature co-membership are label-free descriptions of the genes, so nothing leaks.

Drift from the initialisation: a short training barely moves the table from its random
(Xavier) start, and then every statistic above describes the seed, not what was learned.
:func:`initial_embedding` rebuilds the exact table the network started from (same seed,
same config), :func:`embedding_drift` gives ||E - E0||_F / ||E0||_F, and
:func:`with_initial_comparison` stacks the same neighbour statistics of the trained and the
initial embedding into one summary (column ``embedding`` = ``trained`` / ``initial``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PAIR_COLUMNS: tuple[str, ...] = (
    "gene",
    "neighbour",
    "rank",
    "cosine_similarity",
    "euclidean_distance",
)


def _check_embedding(embedding: pd.DataFrame) -> np.ndarray:
    if not isinstance(embedding, pd.DataFrame):
        raise ValueError("embedding must be a DataFrame indexed by gene, one column per dimension")
    if embedding.index.has_duplicates:
        raise ValueError(
            "embedding lists genes twice: "
            f"{embedding.index[embedding.index.duplicated()][:5].tolist()}"
        )
    if len(embedding) < 3:
        raise ValueError(f"embedding needs at least 3 genes, got {len(embedding)}")
    values = embedding.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise ValueError("embedding holds NaN/inf values")
    if (np.linalg.norm(values, axis=1) == 0).any():
        zero = embedding.index[np.linalg.norm(values, axis=1) == 0].tolist()[:5]
        raise ValueError(f"embedding has all-zero gene vectors (cosine undefined): {zero}")
    return values


def embedding_similarities(embedding: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(Euclidean distance, cosine similarity) gene x gene matrices."""
    from scipy.spatial.distance import pdist, squareform

    values = _check_embedding(embedding)
    genes = embedding.index
    euclidean = pd.DataFrame(squareform(pdist(values, "euclidean")), index=genes, columns=genes)
    cosine = pd.DataFrame(1.0 - squareform(pdist(values, "cosine")), index=genes, columns=genes)
    return euclidean, cosine


def cluster_genes(
    embedding: pd.DataFrame, n_clusters: int, method: str = "average"
) -> pd.DataFrame:
    """Hierarchical clusters on cosine distance: columns ``gene, cluster, leaf_order``."""
    from scipy.cluster.hierarchy import fcluster, leaves_list, linkage

    values = _check_embedding(embedding)
    if not 1 <= n_clusters <= len(values):
        raise ValueError(f"n_clusters must be in [1, {len(values)}], got {n_clusters}")
    tree = linkage(values, method=method, metric="cosine")
    order = np.empty(len(values), dtype=int)
    order[leaves_list(tree)] = np.arange(len(values))
    return pd.DataFrame(
        {
            "gene": embedding.index,
            "cluster": fcluster(tree, n_clusters, criterion="maxclust"),
            "leaf_order": order,
        }
    )


def tsne_map(embedding: pd.DataFrame, perplexity: float = 15.0, seed: int = 0) -> pd.DataFrame:
    """2-D t-SNE coordinates of the gene vectors (cosine metric): ``gene, tsne_1, tsne_2``."""
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    values = _check_embedding(embedding)
    if not 0 < perplexity < len(values):
        raise ValueError(
            f"perplexity must be in (0, {len(values)}) for {len(values)} genes, got {perplexity}"
        )
    # Exact gradients for gene-sized inputs (160 genes); Barnes-Hut only approximates them
    # and is meant for large n. One OpenMP thread: threaded t-SNE oversubscribed the shared
    # 2-core machine (20x slower), and the result does not depend on it.
    method = "exact" if len(values) <= 1000 else "barnes_hut"
    tsne = TSNE(
        n_components=2,
        perplexity=perplexity,
        metric="cosine",
        init="pca",
        method=method,
        random_state=seed,
    )
    with threadpool_limits(1):
        xy = tsne.fit_transform(values)
    return pd.DataFrame({"gene": embedding.index, "tsne_1": xy[:, 0], "tsne_2": xy[:, 1]})


def nearest_neighbour_pairs(embedding: pd.DataFrame, k: int = 1) -> pd.DataFrame:
    """Each gene's ``k`` nearest genes by cosine similarity (ties by name)."""
    euclidean, cosine = embedding_similarities(embedding)
    if not 1 <= k < len(cosine):
        raise ValueError(f"k must be in [1, {len(cosine) - 1}], got {k}")
    rows = []
    for gene in cosine.index:
        others = cosine.loc[gene].drop(gene)
        ranked = sorted(others.items(), key=lambda item: (-item[1], item[0]))[:k]
        for rank, (neighbour, similarity) in enumerate(ranked, start=1):
            rows.append(
                (gene, neighbour, rank, float(similarity), float(euclidean.loc[gene, neighbour]))
            )
    return pd.DataFrame(rows, columns=list(PAIR_COLUMNS))


def coexpression(expression: pd.DataFrame, method: str = "spearman") -> pd.DataFrame:
    """Gene x gene correlation over samples (rows = samples, columns = genes)."""
    if expression.shape[0] < 3:
        raise ValueError(f"co-expression needs at least 3 samples, got {expression.shape[0]}")
    matrix = expression.astype(float)
    constant = matrix.columns[matrix.std(axis=0) == 0].tolist()
    if constant:
        raise ValueError(f"co-expression is undefined for constant genes: {constant[:5]}")
    return matrix.corr(method=method)


def signature_comembership(
    gene_sets: Mapping[str, Sequence[str]], genes: Sequence[str]
) -> pd.DataFrame:
    """Boolean gene x gene matrix: True where two genes share at least one gene set."""
    index = {gene: i for i, gene in enumerate(genes)}
    member = np.zeros((len(genes), len(gene_sets)), dtype=bool)
    for column, name in enumerate(sorted(gene_sets)):
        for gene in gene_sets[name]:
            if gene in index:
                member[index[gene], column] = True
    shared = (member.astype(int) @ member.T.astype(int)) > 0
    np.fill_diagonal(shared, False)
    return pd.DataFrame(shared, index=list(genes), columns=list(genes))


def compare_neighbours(
    pairs: pd.DataFrame,
    coexpression_matrix: pd.DataFrame,
    comembership: pd.DataFrame,
    n_permutations: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Embedding neighbours vs co-expression and signature co-membership.

    Returns (per-pair table with ``coexpression_r`` and ``co_member``, summary table with
    one row per statistic: ``observed`` over unique neighbour pairs, ``all_pairs`` over all
    gene pairs, ``null_mean`` and permutation ``p_value``). Only genes present in both the
    embedding pairs and the two matrices are used; how many were left out is reported in
    the summary (``n_genes``), never silently.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    genes = sorted(set(pairs["gene"]) | set(pairs["neighbour"]))
    usable = [g for g in genes if g in coexpression_matrix.index and g in comembership.index]
    if len(usable) < 3:
        raise ValueError(
            f"only {len(usable)} embedding genes have co-expression and signature data"
        )
    position = {g: i for i, g in enumerate(usable)}
    kept = pairs[pairs["gene"].isin(position) & pairs["neighbour"].isin(position)].copy()
    r = coexpression_matrix.loc[usable, usable].to_numpy(dtype=float)
    shared = comembership.loc[usable, usable].to_numpy(dtype=bool)
    kept["coexpression_r"] = [
        r[position[a], position[b]] for a, b in zip(kept["gene"], kept["neighbour"])
    ]
    kept["co_member"] = [
        bool(shared[position[a], position[b]]) for a, b in zip(kept["gene"], kept["neighbour"])
    ]

    unique = {tuple(sorted(p)) for p in zip(kept["gene"], kept["neighbour"])}
    i = np.array([position[a] for a, _ in sorted(unique)])
    j = np.array([position[b] for _, b in sorted(unique)])
    upper = np.triu_indices(len(usable), k=1)
    statistics = {
        "mean_abs_coexpression": (np.abs(r), np.abs(r)[upper].mean()),
        "fraction_signature_comembers": (shared.astype(float), shared[upper].mean()),
    }
    rng = np.random.default_rng(seed)
    permutations = np.array([rng.permutation(len(usable)) for _ in range(n_permutations)])
    rows = []
    for name, (matrix, all_pairs) in statistics.items():
        observed = float(matrix[i, j].mean())
        null = matrix[permutations[:, i], permutations[:, j]].mean(axis=1)
        rows.append(
            {
                "statistic": name,
                "observed": observed,
                "all_pairs": float(all_pairs),
                "null_mean": float(null.mean()),
                "p_value": float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations)),
                "n_pairs": len(unique),
                "n_genes": len(usable),
                "n_genes_left_out": len(genes) - len(usable),
                "n_permutations": n_permutations,
            }
        )
    return kept.reset_index(drop=True), pd.DataFrame(rows)


def initial_embedding(fitted: Any) -> pd.DataFrame:
    """The gene-identity table an AMU network started from, before any training step.

    ``fitted`` is a :class:`~icb_kedro.models.amu.train.FittedNetwork` (or its dict, as
    persisted by the amu pipeline). Rebuilt by seeding Paddle with the fit's seed and
    building the same architecture and config (:func:`~icb_kedro.models.amu.train.initial_network`),
    so it is exact for the Paddle version that trained the network. Indexed by gene, like
    the trained table.
    """
    from icb_kedro.models.amu.train import FittedNetwork, initial_network

    if isinstance(fitted, Mapping):
        fitted = FittedNetwork.from_mapping(fitted)
    if fitted.architecture != "amu":
        raise ValueError(
            f"gene embeddings exist for the 'amu' architecture only, not {fitted.architecture!r}"
        )
    table = initial_network(fitted).gene_embeddings()
    if table.shape[0] != len(fitted.features):
        raise ValueError(
            f"initial embedding has {table.shape[0]} rows for {len(fitted.features)} genes"
        )
    return pd.DataFrame(table.astype(np.float64), index=list(fitted.features))


def embedding_drift(trained: pd.DataFrame, initial: pd.DataFrame) -> float:
    """Relative change from the initialisation, ||E - E0||_F / ||E0||_F (0 = never moved)."""
    if trained.shape != initial.shape or not trained.index.equals(initial.index):
        raise ValueError(
            "trained and initial embeddings differ in shape or genes: "
            f"{trained.shape} vs {initial.shape}"
        )
    start = initial.to_numpy(dtype=float)
    norm = np.linalg.norm(start)
    if not norm > 0:
        raise ValueError("the initial embedding is all zeros: relative drift is undefined")
    return float(np.linalg.norm(trained.to_numpy(dtype=float) - start) / norm)


def shared_neighbour_fraction(pairs: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Fraction of the unique (unordered) neighbour pairs of ``pairs`` that are also
    neighbour pairs in ``reference`` (1 = the same neighbour graph)."""
    mine = {tuple(sorted(p)) for p in zip(pairs["gene"], pairs["neighbour"])}
    theirs = {tuple(sorted(p)) for p in zip(reference["gene"], reference["neighbour"])}
    return float(len(mine & theirs) / len(mine)) if mine else float("nan")


def with_initial_comparison(
    trained_summary: pd.DataFrame,
    initial_summary: pd.DataFrame | None = None,
    drift: float | None = None,
    shared_pairs: float | None = None,
) -> pd.DataFrame:
    """One summary for both embeddings: :func:`compare_neighbours`'s rows of the trained
    embedding, then the same statistics of the initial one (same permutations).

    Adds ``embedding`` (first column: ``trained`` / ``initial``), ``relative_drift``
    (||E - E0||_F / ||E0||_F of that row's embedding: the drift for ``trained``, 0 for
    ``initial``) and ``neighbour_pairs_shared`` (fraction of that embedding's neighbour
    pairs that are also neighbours at initialisation). Without an initial summary (the
    initialisation cannot be rebuilt, e.g. an exported table) only the trained rows
    remain, with NaN drift.
    """
    nan = float("nan")
    trained = trained_summary.assign(
        relative_drift=nan if drift is None else float(drift),
        neighbour_pairs_shared=nan if shared_pairs is None else float(shared_pairs),
    )
    trained.insert(0, "embedding", "trained")
    parts = [trained]
    if initial_summary is not None:
        initial = initial_summary.assign(relative_drift=0.0, neighbour_pairs_shared=1.0)
        initial.insert(0, "embedding", "initial")
        parts.append(initial)
    return pd.concat(parts, ignore_index=True)


def plot_tsne(
    coordinates: pd.DataFrame, clusters: pd.DataFrame | None = None, title: str = ""
) -> Figure:
    """t-SNE map of gene vectors, coloured by hierarchical cluster, every gene labelled."""
    data = (
        coordinates.merge(clusters[["gene", "cluster"]], on="gene", how="left")
        if clusters is not None
        else coordinates
    )
    fig = Figure(figsize=(8.5, 7.5), layout="constrained")
    ax = fig.subplots()
    colour = data["cluster"] if "cluster" in data else "#4c72b0"
    ax.scatter(data["tsne_1"], data["tsne_2"], c=colour, cmap="tab10", s=22)
    for _, row in data.iterrows():
        ax.annotate(
            row["gene"],
            (row["tsne_1"], row["tsne_2"]),
            fontsize=5.5,
            xytext=(2, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_title(title or "AMU gene embedding (t-SNE, cosine)")
    return fig


def plot_similarity_heatmap(
    cosine: pd.DataFrame, clusters: pd.DataFrame, title: str = ""
) -> Figure:
    """Cosine-similarity heatmap with genes in hierarchical-clustering leaf order."""
    order = clusters.sort_values("leaf_order")["gene"].tolist()
    matrix = cosine.loc[order, order]
    size = min(12.0, 3.0 + 0.06 * len(order))
    fig = Figure(figsize=(size + 1.2, size), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(matrix.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1)
    step = max(1, len(order) // 60)
    ax.set_xticks(range(0, len(order), step), order[::step], rotation=90, fontsize=5)
    ax.set_yticks(range(0, len(order), step), order[::step], fontsize=5)
    fig.colorbar(image, ax=ax, shrink=0.7, label="cosine similarity")
    ax.set_title(title or "AMU gene embedding: cosine similarity (clustered)")
    return fig
