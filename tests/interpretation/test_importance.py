"""IC2Bert importance: attention from softmax probabilities, permutation, 0.4/0.6, Table 7."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from icb_kedro.interpretation.importance import (
    attention_importance,
    combine_importance,
    mean_attention_received,
    normalise_importance,
    permutation_auroc_drop,
    plot_importance_components,
    plot_top_k_frequency,
    top_k_frequency,
)

GENES = ["A", "B", "C", "D", "E"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _planted_attention(rng: np.random.Generator, batch: int, focus: int = 2) -> np.ndarray:
    """[layers, batch, heads, L, L] probabilities where every query attends mostly to ``focus``."""
    logits = rng.normal(size=(3, batch, 2, len(GENES), len(GENES)))
    logits[..., focus] += 3.0
    return _softmax(logits)


def test_attention_importance_finds_planted_gene_and_sums_to_one():
    rng = np.random.default_rng(0)
    batches = [_planted_attention(rng, 4), _planted_attention(rng, 2)]
    importance = attention_importance(batches, GENES)
    assert importance.idxmax() == "C"
    assert importance.sum() == pytest.approx(1.0)
    assert (importance >= 0).all()
    # Splitting the rows into batches does not change the result (row-weighted mean).
    whole = attention_importance([np.concatenate(batches, axis=1)], GENES)
    np.testing.assert_allclose(importance.to_numpy(), whole.to_numpy(), atol=1e-12)


def test_attention_must_be_probabilities_not_block_outputs():
    rng = np.random.default_rng(1)
    block_output = rng.normal(size=(2, 4, len(GENES), len(GENES)))  # the original code's mistake
    with pytest.raises(ValueError, match="softmax probabilities"):
        mean_attention_received(block_output)
    with pytest.raises(ValueError, match=r"\[..., L, L\]"):
        mean_attention_received(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="5 positions but 4 genes"):
        attention_importance([_planted_attention(rng, 1)], GENES[:4])
    with pytest.raises(ValueError, match="no attention batches"):
        attention_importance([], GENES)


def test_permutation_importance_finds_planted_gene():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, len(GENES)))
    y = (x[:, 3] > 0).astype(int)

    def predict(rows: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-3 * rows[:, 3]))

    table = permutation_auroc_drop(predict, x, y, GENES, n_repeats=4, seed=0)
    assert table.loc[table["auroc_drop"].idxmax(), "gene"] == "D"
    assert table["base_auroc"].iloc[0] == pytest.approx(1.0)
    assert (
        table.set_index("gene").drop("D")["auroc_drop"].abs().max() == 0
    )  # predictor ignores them
    again = permutation_auroc_drop(predict, x, y, GENES, n_repeats=4, seed=0)
    pd.testing.assert_frame_equal(table, again)
    with pytest.raises(ValueError, match="both classes"):
        permutation_auroc_drop(predict, x, np.zeros(60, dtype=int), GENES)


def test_combination_uses_paper_weights_and_normalisation():
    attention = pd.Series([0.1, 0.5, 0.2, 0.2, 0.0], index=GENES)
    permutation = pd.Series([0.02, 0.0, 0.06, -0.02, 0.0], index=GENES)
    table = combine_importance(attention, permutation).set_index("gene")
    assert table["attention"].sum() == pytest.approx(1.0)
    assert table["permutation"].abs().sum() == pytest.approx(1.0)
    assert table.loc["C", "combined"] == pytest.approx(0.4 * 0.2 + 0.6 * 0.6)
    assert table.loc["D", "combined"] == pytest.approx(0.4 * 0.2 - 0.6 * 0.2)
    assert table["rank"].idxmin() == "C"  # 0.44 beats B's 0.4 * 0.5 = 0.20
    # With non-negative permutation scores the combined importance sums to 1 as well.
    combined = combine_importance(attention, permutation.clip(lower=0))["combined"]
    assert combined.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(normalise_importance([0.0, 0.0]), [0.0, 0.0])
    with pytest.raises(ValueError, match="different genes"):
        combine_importance(attention, permutation.rename({"E": "F"}))


def test_top_k_frequency_counts_held_out_cohorts():
    rows = []
    for cohort, order in {
        "h1": ["A", "B", "C", "D"],
        "h2": ["A", "C", "B", "D"],
        "h3": ["B", "A", "D", "C"],
    }.items():
        rows += [
            {"held_out": cohort, "gene": g, "combined": 1.0 - i / 10} for i, g in enumerate(order)
        ]
    table = top_k_frequency(pd.DataFrame(rows), ks=(1, 2)).set_index("gene")
    assert table.loc["A", "top1"] == 2 and table.loc["B", "top1"] == 1
    assert table.loc["A", "top2"] == 3 and table.loc["C", "top2"] == 1
    assert (table["n_groups"] == 3).all()
    assert table.index[0] == "A"
    assert "D" not in table.index  # never in any top-2
    with pytest.raises(ValueError, match="twice"):
        top_k_frequency(pd.DataFrame(rows + rows[:1]), ks=(1,))


def test_importance_plots():
    frequency = pd.DataFrame({"gene": ["A", "B"], "top10": [3, 1], "n_groups": [3, 3]})
    assert isinstance(plot_top_k_frequency(frequency, k=10), Figure)
    table = combine_importance(
        pd.Series([0.5, 0.5], index=["A", "B"]), pd.Series([0.1, -0.1], index=["A", "B"])
    )
    assert isinstance(plot_importance_components(table), Figure)
    with pytest.raises(ValueError, match="top5"):
        plot_top_k_frequency(frequency, k=5)
