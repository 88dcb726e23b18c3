"""SHAP on a synthetic case with a known answer: the planted informative gene ranks first."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from icb_kedro.interpretation.shap_analysis import (
    kernel_shap_values,
    plot_shap_bar,
    plot_shap_beeswarm,
    shap_gene_ranking,
    top_gene_overlap,
    top_genes,
    tree_shap_values,
)

GENES = [f"G{i}" for i in range(8)]
INFORMATIVE = 3  # column index of the planted gene


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(160, len(GENES)))
    y = (x[:, INFORMATIVE] + 0.3 * rng.normal(size=160) > 0).astype(int)
    return x, y


def test_kernel_shap_ranks_planted_gene_first_and_is_reproducible(planted):
    from sklearn.linear_model import LogisticRegression

    x, y = planted
    model = LogisticRegression().fit(x[:120], y[:120])

    def predict(rows: np.ndarray) -> np.ndarray:
        return model.predict_proba(rows)[:, 1]

    values = kernel_shap_values(predict, x[:120], x[120:], n_background=10, nsamples=120, seed=5)
    assert values.shape == (40, len(GENES))
    # Efficiency: SHAP values of a row sum to f(row) - E_background f (summarised background).
    import shap

    background_mean = np.average(
        predict(shap.kmeans(x[:120], 10).data), weights=shap.kmeans(x[:120], 10).weights
    )
    np.testing.assert_allclose(values.sum(axis=1), predict(x[120:]) - background_mean, atol=1e-6)
    ranking = shap_gene_ranking(values, GENES, x[120:])
    assert ranking.loc[0, "gene"] == GENES[INFORMATIVE]
    assert ranking.loc[0, "direction"] > 0.8  # higher expression -> higher P(responder)
    assert list(ranking["rank"]) == list(range(1, len(GENES) + 1))
    state_before = np.random.get_state()[1].copy()
    again = kernel_shap_values(predict, x[:120], x[120:], n_background=10, nsamples=120, seed=5)
    np.testing.assert_array_equal(values, again)
    np.testing.assert_array_equal(
        np.random.get_state()[1], state_before
    )  # global RNG left untouched


def test_tree_shap_ranks_planted_gene_first(planted):
    from xgboost import XGBClassifier

    x, y = planted
    model = XGBClassifier(n_estimators=30, max_depth=2, random_state=0, n_jobs=1).fit(
        x[:120], y[:120]
    )
    values = tree_shap_values(model, x[120:])
    assert values.shape == (40, len(GENES))
    ranking = shap_gene_ranking(values, GENES)
    assert top_genes(ranking, 1) == [GENES[INFORMATIVE]]
    assert ranking["direction"].isna().all()  # no features given -> no direction


def test_ranking_breaks_ties_by_name_and_rejects_bad_input():
    values = np.ones((3, 3))
    ranking = shap_gene_ranking(values, ["b", "c", "a"])
    assert ranking["gene"].tolist() == ["a", "b", "c"]
    with pytest.raises(ValueError, match="3 gene columns, expected 2"):
        shap_gene_ranking(values, ["a", "b"])
    with pytest.raises(ValueError, match="unique"):
        shap_gene_ranking(values, ["a", "a", "b"])
    with pytest.raises(ValueError, match="NaN"):
        shap_gene_ranking(np.array([[np.nan, 1.0, 1.0]]), ["a", "b", "c"])
    with pytest.raises(ValueError, match="k must be"):
        top_genes(ranking, 0)
    # Zero attribution is never "top": a constant model has no top genes at all.
    sparse = shap_gene_ranking(np.array([[0.0, 0.5, 0.0], [0.0, -0.1, 0.0]]), ["a", "b", "c"])
    assert top_genes(sparse, 3) == ["b"]
    assert top_genes(shap_gene_ranking(np.zeros((2, 3)), ["a", "b", "c"]), 3) == []


def test_direction_uses_the_rows_that_measure_the_gene():
    # Gene "b" is unmeasured (NaN, SHAP 0) in the last two rows, as for a cohort lacking
    # panel genes: the direction is its correlation over the measured rows only.
    features = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, np.nan], [5.0, np.nan]])
    values = np.array([[0.1, -0.1], [0.2, -0.2], [0.3, -0.3], [0.4, 0.0], [0.5, 0.0]])
    ranking = shap_gene_ranking(values, ["a", "b"], features).set_index("gene")
    assert ranking.loc["a", "direction"] == pytest.approx(1.0)
    assert ranking.loc["b", "direction"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="inf"):
        shap_gene_ranking(values, ["a", "b"], np.where(np.isnan(features), np.inf, features))


def test_top_gene_overlap_finds_the_intersection():
    def ranking(genes: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"gene": genes, "rank": range(1, len(genes) + 1)})

    rankings = {
        "svm": ranking(["TNF", "A", "TNFRSF1A", "B"]),
        "xgb": ranking(["TNFRSF1A", "TNF", "C", "A"]),
        "amu": ranking(["TNF", "TNFRSF1A", "D", "E"]),
    }
    overlap = top_gene_overlap(rankings, k=3)
    assert sorted(overlap.loc[overlap["in_all"], "gene"]) == ["TNF", "TNFRSF1A"]
    assert (
        overlap.set_index("gene").loc["A", "n_models"] == 1
    )  # top-3 of svm only ("A" is 4th in xgb)
    assert overlap.set_index("gene").loc["TNF", "models"] == "amu,svm,xgb"
    with pytest.raises(ValueError, match="at least one"):
        top_gene_overlap({}, k=3)


def test_plots_are_figures_with_content(planted):
    x, _ = planted
    values = np.tile(np.arange(len(GENES), dtype=float), (10, 1))
    beeswarm = plot_shap_beeswarm(values, x[:10], GENES, "beeswarm", max_display=5)
    bar = plot_shap_bar(shap_gene_ranking(values, GENES, x[:10]), "bar", max_display=5)
    for figure in (beeswarm, bar):
        assert isinstance(figure, Figure)
        assert figure.axes and figure.axes[0].get_title()
    with pytest.raises(ValueError, match="differs"):
        plot_shap_beeswarm(values, x[:9], GENES, "bad")


def test_top_k_stability_separates_a_dominant_gene_from_noise():
    from icb_kedro.interpretation.shap_analysis import top_k_stability

    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(30)]
    values = rng.normal(0.0, 0.1, size=(60, 30))
    values[:, 0] += rng.choice([-2.0, 2.0], size=60)  # G0 dominates in every row
    folds = np.repeat(["A|0", "B|0", "C|0"], 20)
    table = top_k_stability(values, genes, folds, k=3, n_boot=100, seed=0)
    first = table.iloc[0]
    assert (
        first["gene"] == "G0"
        and first["rank"] == 1
        and first["bootstrap_top_k"] == 1.0
        and first["fold_top_k"] == 1.0
    )
    assert first["rank_ci_low"] == first["rank_ci_high"] == 1
    others = table[table["gene"] != "G0"]
    assert (
        others["bootstrap_top_k"] < 1.0
    ).all()  # the noise genes' places in the top 3 are not stable
    assert table["n_folds"].eq(3).all() and table["n_rows"].eq(60).all()
    again = top_k_stability(values, genes, folds, k=3, n_boot=100, seed=0)
    pd.testing.assert_frame_equal(table, again)  # seeded
    with pytest.raises(ValueError, match="folds labels"):
        top_k_stability(values, genes, folds[:10], k=3)
