"""AMU gene embeddings: planted gene groups are recovered by every analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from icb_kedro.interpretation.embeddings import (
    cluster_genes,
    coexpression,
    compare_neighbours,
    embedding_similarities,
    nearest_neighbour_pairs,
    plot_similarity_heatmap,
    plot_tsne,
    signature_comembership,
    tsne_map,
)

GROUPS = {"g1": [f"A{i}" for i in range(6)], "g2": [f"B{i}" for i in range(6)], "g3": [f"C{i}" for i in range(6)]}
GENES = [g for members in GROUPS.values() for g in members]


@pytest.fixture(scope="module")
def embedding() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 3
    rows = [centres[i] + 0.3 * rng.normal(size=20) for i, members in enumerate(GROUPS.values()) for _ in members]
    return pd.DataFrame(rows, index=GENES)


@pytest.fixture(scope="module")
def expression() -> pd.DataFrame:
    """Samples x genes where each group shares a latent factor (co-expressed within groups)."""
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(80, 3))
    columns = {gene: factors[:, i] + 0.4 * rng.normal(size=80) for i, members in enumerate(GROUPS.values()) for gene in members}
    return pd.DataFrame(columns)


def _group(gene: str) -> str:
    return gene[0]


def test_similarities_and_clusters_recover_groups(embedding):
    euclidean, cosine = embedding_similarities(embedding)
    assert euclidean.shape == cosine.shape == (18, 18)
    np.testing.assert_allclose(np.diag(cosine), 1.0)
    np.testing.assert_allclose(np.diag(euclidean), 0.0)
    assert cosine.loc["A0", "A1"] > cosine.loc["A0", "B0"]
    clusters = cluster_genes(embedding, n_clusters=3).set_index("gene")
    for members in GROUPS.values():
        assert clusters.loc[members, "cluster"].nunique() == 1
    assert clusters["cluster"].nunique() == 3
    assert sorted(clusters["leaf_order"]) == list(range(18))


def test_neighbours_are_within_groups(embedding):
    pairs = nearest_neighbour_pairs(embedding, k=2)
    assert len(pairs) == 18 * 2
    assert (pairs["gene"].map(_group) == pairs["neighbour"].map(_group)).all()
    assert (pairs["gene"] != pairs["neighbour"]).all()
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbour_pairs(embedding, k=18)


def test_tsne_is_seeded_and_separates_groups(embedding):
    first = tsne_map(embedding, perplexity=5, seed=3)
    again = tsne_map(embedding, perplexity=5, seed=3)
    pd.testing.assert_frame_equal(first, again)
    xy = first.set_index("gene")[["tsne_1", "tsne_2"]]
    within = np.mean([np.linalg.norm(xy.loc["A0"] - xy.loc[g]) for g in GROUPS["g1"][1:]])
    between = np.mean([np.linalg.norm(xy.loc["A0"] - xy.loc[g]) for g in GROUPS["g2"]])
    assert within < between
    with pytest.raises(ValueError, match="perplexity"):
        tsne_map(embedding, perplexity=30)


def test_neighbours_agree_with_coexpression_and_signatures(embedding, expression):
    pairs = nearest_neighbour_pairs(embedding, k=1)
    correlation = coexpression(expression)
    membership = signature_comembership({"set_a": GROUPS["g1"], "set_b": GROUPS["g2"] + ["NOT_A_GENE"]}, GENES)
    per_pair, summary = compare_neighbours(pairs, correlation, membership, n_permutations=200, seed=0)
    assert per_pair["co_member"].sum() == 12  # A and B genes' neighbours share a set; C genes have none
    assert (per_pair["coexpression_r"] > 0.5).all()
    stats = summary.set_index("statistic")
    assert stats.loc["mean_abs_coexpression", "observed"] > stats.loc["mean_abs_coexpression", "all_pairs"]
    assert stats.loc["mean_abs_coexpression", "p_value"] < 0.01
    assert stats.loc["fraction_signature_comembers", "p_value"] < 0.01
    assert stats["n_genes_left_out"].eq(0).all()
    again = compare_neighbours(pairs, correlation, membership, n_permutations=200, seed=0)[1]
    pd.testing.assert_frame_equal(summary, again)


def test_random_embedding_shows_no_association(expression):
    rng = np.random.default_rng(7)
    random_embedding = pd.DataFrame(rng.normal(size=(18, 20)), index=GENES)
    pairs = nearest_neighbour_pairs(random_embedding, k=1)
    membership = signature_comembership({"set_a": GROUPS["g1"]}, GENES)
    _, summary = compare_neighbours(pairs, coexpression(expression), membership, n_permutations=300, seed=1)
    assert summary.set_index("statistic").loc["mean_abs_coexpression", "p_value"] > 0.01


def test_bad_embeddings_are_rejected(embedding):
    with pytest.raises(ValueError, match="twice"):
        embedding_similarities(pd.concat([embedding, embedding.iloc[:1]]))
    zero = embedding.copy()
    zero.iloc[0] = 0.0
    with pytest.raises(ValueError, match="all-zero"):
        embedding_similarities(zero)
    with pytest.raises(ValueError, match="constant genes"):
        coexpression(pd.DataFrame({"a": [1.0, 1.0, 1.0], "b": [1.0, 2.0, 3.0]}))


def test_embedding_plots(embedding):
    _, cosine = embedding_similarities(embedding)
    clusters = cluster_genes(embedding, 3)
    assert isinstance(plot_tsne(tsne_map(embedding, perplexity=5), clusters), Figure)
    assert isinstance(plot_similarity_heatmap(cosine, clusters), Figure)
