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
    embedding_drift,
    embedding_similarities,
    initial_embedding,
    nearest_neighbour_pairs,
    plot_similarity_heatmap,
    plot_tsne,
    shared_neighbour_fraction,
    signature_comembership,
    tsne_map,
    with_initial_comparison,
)

GROUPS = {
    "g1": [f"A{i}" for i in range(6)],
    "g2": [f"B{i}" for i in range(6)],
    "g3": [f"C{i}" for i in range(6)],
}
GENES = [g for members in GROUPS.values() for g in members]


@pytest.fixture(scope="module")
def embedding() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 20)) * 3
    rows = [
        centres[i] + 0.3 * rng.normal(size=20)
        for i, members in enumerate(GROUPS.values())
        for _ in members
    ]
    return pd.DataFrame(rows, index=GENES)


@pytest.fixture(scope="module")
def expression() -> pd.DataFrame:
    """Samples x genes where each group shares a latent factor (co-expressed within groups)."""
    rng = np.random.default_rng(1)
    factors = rng.normal(size=(80, 3))
    columns = {
        gene: factors[:, i] + 0.4 * rng.normal(size=80)
        for i, members in enumerate(GROUPS.values())
        for gene in members
    }
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
    membership = signature_comembership(
        {"set_a": GROUPS["g1"], "set_b": GROUPS["g2"] + ["NOT_A_GENE"]}, GENES
    )
    per_pair, summary = compare_neighbours(
        pairs, correlation, membership, n_permutations=200, seed=0
    )
    assert (
        per_pair["co_member"].sum() == 12
    )  # A and B genes' neighbours share a set; C genes have none
    assert (per_pair["coexpression_r"] > 0.5).all()
    stats = summary.set_index("statistic")
    assert (
        stats.loc["mean_abs_coexpression", "observed"]
        > stats.loc["mean_abs_coexpression", "all_pairs"]
    )
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
    _, summary = compare_neighbours(
        pairs, coexpression(expression), membership, n_permutations=300, seed=1
    )
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


# --------------------------------------------------------------------- initialisation and drift


def _tiny_fit(monkeypatch, seed: int = 5, epochs: int = 2):
    """A 1-layer AMU fitted on random rows; returns (fitted, the embedding table
    ``fit_network`` itself built before its first step, captured inside the fit)."""
    from icb_kedro.models.amu import train

    captured = {}
    build = train.build_network

    def build_and_capture(architecture, model_config, engine="eager"):
        network = build(architecture, model_config, engine)
        captured["initial"] = network.gene_embeddings()
        return network

    monkeypatch.setattr(train, "build_network", build_and_capture)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 6))
    y = (X[:, 0] > 0).astype(int)
    fitted = train.fit_network(
        X,
        y,
        model_config={"n_layers": 1, "ffn_dim": 16},
        train_config=train.TrainConfig(epochs=epochs, learning_rate=3e-3, seed=seed, num_threads=1),
        features=[f"G{i}" for i in range(6)],
    )
    monkeypatch.setattr(train, "build_network", build)
    return fitted, captured["initial"]


def test_initial_embedding_is_exactly_the_fit_initialisation(monkeypatch):
    import paddle

    from icb_kedro.models.amu.model import AmuConfig, AmuNet

    fitted, started_from = _tiny_fit(monkeypatch)
    rebuilt = initial_embedding(fitted)
    assert list(rebuilt.index) == fitted.features and rebuilt.shape == (6, 20)
    np.testing.assert_array_equal(
        rebuilt.to_numpy(), started_from.astype(np.float64)
    )  # what fit_network started from
    # ... which is an untrained network built with the same seed and config,
    paddle.seed(5)
    untrained = AmuNet(AmuConfig(**fitted.model_config)).gene_embeddings()
    np.testing.assert_array_equal(rebuilt.to_numpy(), untrained.astype(np.float64))
    # ... and not what training left (nor another seed's start).
    assert not np.array_equal(rebuilt.to_numpy(), fitted.gene_embeddings())
    paddle.seed(6)
    assert not np.array_equal(
        rebuilt.to_numpy(), AmuNet(AmuConfig(**fitted.model_config)).gene_embeddings()
    )
    # The persisted dict form works too, and rebuilding leaves the caller's random stream alone.
    from dataclasses import asdict

    paddle.seed(11)
    expected = paddle.rand([3]).numpy()
    paddle.seed(11)
    pd.testing.assert_frame_equal(initial_embedding({"fold": "f", **asdict(fitted)}), rebuilt)
    np.testing.assert_array_equal(paddle.rand([3]).numpy(), expected)


def test_drift_is_positive_after_training_and_zero_at_the_start(monkeypatch):
    fitted, _ = _tiny_fit(monkeypatch, epochs=3)
    start = initial_embedding(fitted)
    trained = pd.DataFrame(fitted.gene_embeddings(), index=fitted.features)
    drift = embedding_drift(trained, start)
    assert 0 < drift < 1  # a short training moves the table, but not far
    assert embedding_drift(start, start) == 0.0
    expected = np.linalg.norm(trained.to_numpy() - start.to_numpy()) / np.linalg.norm(
        start.to_numpy()
    )
    assert drift == pytest.approx(expected)
    with pytest.raises(ValueError, match="differ in shape or genes"):
        embedding_drift(trained.iloc[:-1], start.iloc[:-1].rename(index=str.lower))


def test_summary_with_the_initial_embedding(embedding, expression):
    rng = np.random.default_rng(3)
    start = pd.DataFrame(rng.normal(size=embedding.shape), index=embedding.index)
    correlation = coexpression(expression)
    membership = signature_comembership({"set_a": GROUPS["g1"], "set_b": GROUPS["g2"]}, GENES)
    pairs, start_pairs = (
        nearest_neighbour_pairs(embedding, k=1),
        nearest_neighbour_pairs(start, k=1),
    )
    summary = compare_neighbours(pairs, correlation, membership, n_permutations=100, seed=0)[1]
    start_summary = compare_neighbours(
        start_pairs, correlation, membership, n_permutations=100, seed=0
    )[1]
    shared = shared_neighbour_fraction(pairs, start_pairs)
    assert shared_neighbour_fraction(pairs, pairs) == 1.0 and 0 <= shared < 1
    both = with_initial_comparison(
        summary, start_summary, embedding_drift(embedding, start), shared
    )
    assert (
        list(both.columns[:2]) == ["embedding", "statistic"]
        and list(both["embedding"]) == ["trained"] * 2 + ["initial"] * 2
    )
    assert set(summary.columns) < set(both.columns) and {
        "relative_drift",
        "neighbour_pairs_shared",
    } <= set(both.columns)
    trained_rows = both[both["embedding"] == "trained"]
    pd.testing.assert_frame_equal(
        trained_rows[list(summary.columns)].reset_index(drop=True), summary
    )
    assert (trained_rows["relative_drift"] > 0).all() and (
        both.loc[both["embedding"] == "initial", "relative_drift"] == 0
    ).all()
    # Planted groups vs a random start: only the trained table's neighbours are co-expressed.
    stats = both.set_index(["embedding", "statistic"])
    assert (
        stats.loc[("trained", "mean_abs_coexpression"), "p_value"]
        < 0.05
        < stats.loc[("initial", "mean_abs_coexpression"), "p_value"]
    )
    alone = with_initial_comparison(
        summary
    )  # no initialisation to compare with (an exported table)
    assert list(alone["embedding"]) == ["trained"] * 2 and alone["relative_drift"].isna().all()


def test_report_sentence_states_drift_and_verdicts():
    from icb_kedro.reporting.sections_genes import embedding_drift_text

    def summary(trained_p, initial_p):
        rows = [
            {"statistic": "mean_abs_coexpression", "observed": 0.3, "p_value": trained_p},
            {"statistic": "fraction_signature_comembers", "observed": 0.1, "p_value": 0.5},
        ]
        start = [{**row, "p_value": initial_p if i == 0 else 0.5} for i, row in enumerate(rows)]
        return with_initial_comparison(
            pd.DataFrame(rows), pd.DataFrame(start), drift=0.0123, shared_pairs=0.9
        )

    changed = embedding_drift_text(summary(0.001, 0.4))
    assert "= 0.0123 from the table" in changed and "90% of its nearest-neighbour pairs" in changed
    assert (
        "another verdict at p < 0.05 than the untrained table for mean abs coexpression" in changed
    )
    assert "cannot be credited to training" in embedding_drift_text(summary(0.001, 0.002))
    assert "no association in either" in embedding_drift_text(summary(0.4, 0.3))
    assert "not measured" in embedding_drift_text(
        with_initial_comparison(pd.DataFrame([{"statistic": "s", "observed": 0.1, "p_value": 0.5}]))
    )
    assert (
        embedding_drift_text(None) is None
        and embedding_drift_text(pd.DataFrame({"statistic": ["s"]})) is None
    )
