"""Per-gene quantile tokenizer: fitted on training rows only, mask id never a data token."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.ic2bert.tokenizer import (
    QuantileBins,
    fit_quantile_bins,
    tokenize,
    tokenize_values,
)


def _frame(values: np.ndarray, genes: list[str]) -> pd.DataFrame:
    return pd.DataFrame(values, columns=genes)


@pytest.mark.parametrize("n_bins", [2, 4, 8, 16, 32, 64, 128])
def test_tokens_are_data_ids_never_the_mask(n_bins: int) -> None:
    rng = np.random.default_rng(n_bins)
    genes = [f"g{i}" for i in range(5)]
    train = _frame(rng.normal(size=(300, 5)), genes)
    bins = fit_quantile_bins(train, genes, n_bins)
    extreme = np.vstack(
        [rng.normal(scale=50, size=(200, 5)), np.full((1, 5), 1e9), np.full((1, 5), -1e9)]
    )
    tokens = tokenize(bins, _frame(extreme, genes))
    assert tokens.min() >= 0 and tokens.max() <= n_bins - 1
    assert bins.mask_id == n_bins and not (tokens == bins.mask_id).any()
    # Out-of-range values clip to the edge bins.
    assert (tokens[-2] == n_bins - 1).all() and (tokens[-1] == 0).all()


def test_quantile_bins_are_balanced_per_gene() -> None:
    rng = np.random.default_rng(0)
    genes = ["low", "high"]
    values = np.column_stack(
        [rng.normal(0, 1, 4000), rng.normal(100, 10, 4000)]
    )  # very different scales
    bins = fit_quantile_bins(_frame(values, genes), genes, 4)
    tokens = tokenize(bins, _frame(values, genes))
    for g in range(2):
        shares = np.bincount(tokens[:, g], minlength=4) / len(tokens)
        np.testing.assert_allclose(shares, 0.25, atol=0.01)


def test_fitted_on_training_rows_only() -> None:
    rng = np.random.default_rng(1)
    genes = ["a", "b", "c"]
    train = _frame(rng.normal(size=(100, 3)), genes)
    bins = fit_quantile_bins(train, genes, 4)
    # Scoring other rows (even wildly shifted ones) never changes the frozen edges.
    before = bins.edges.copy()
    tokenize(bins, _frame(rng.normal(loc=20, size=(50, 3)), genes))
    np.testing.assert_array_equal(bins.edges, before)
    np.testing.assert_allclose(
        bins.edges, np.quantile(train.to_numpy(), [0.25, 0.5, 0.75], axis=0).T
    )


def test_constant_genes_and_ties_go_to_the_middle_of_their_bins() -> None:
    genes = ["constant", "mostly_floor"]
    constant = np.full(40, 3.0)
    floor = np.r_[np.zeros(30), np.linspace(1, 2, 10)]  # 75% tied at the floor
    bins = fit_quantile_bins(_frame(np.column_stack([constant, floor]), genes), genes, 4)
    tokens = tokenize_values(bins, np.column_stack([constant, floor]))
    assert set(tokens[:, 0]) == {1}  # all edges equal: (0 + 3) // 2
    assert set(tokens[:30, 1]) == {1}  # the tied floor mass stays in one bin, not the top one
    assert set(tokens[30:, 1]) == {3}
    assert tokenize_values(bins, np.array([[3.5, -1.0]]))[0].tolist() == [3, 0]


def test_genes_selected_by_name_and_missing_genes_refused() -> None:
    genes = ["a", "b"]
    bins = fit_quantile_bins(_frame(np.random.default_rng(0).normal(size=(20, 2)), genes), genes, 2)
    shuffled = pd.DataFrame({"b": [5.0, -5.0], "extra": [0.0, 0.0], "a": [-5.0, 5.0]})
    assert tokenize(bins, shuffled).tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match=r"missing: b"):
        tokenize(bins, pd.DataFrame({"a": [0.0]}))
    with pytest.raises(ValueError, match="non-finite"):
        tokenize(bins, pd.DataFrame({"a": [np.inf], "b": [0.0]}))
    # A gene the cohort does not measure (NaN, or an absent column when allowed) is [MISSING].
    assert tokenize(bins, pd.DataFrame({"a": [np.nan], "b": [5.0]})).tolist() == [
        [bins.missing_id, 1]
    ]
    assert tokenize(bins, pd.DataFrame({"b": [5.0]}), allow_absent=True).tolist() == [
        [bins.missing_id, 1]
    ]


def test_bins_fitted_on_measured_rows_only() -> None:
    genes = ["a", "b"]
    values = np.random.default_rng(3).normal(size=(40, 2))
    with_gaps = values.copy()
    with_gaps[:20, 1] = np.nan  # a cohort without gene b
    bins = fit_quantile_bins(_frame(with_gaps, genes), genes, 4)
    np.testing.assert_allclose(bins.edges[1], np.quantile(values[20:, 1], [0.25, 0.5, 0.75]))
    assert bins.vocab_size == 6 and bins.mask_id == 4 and bins.missing_id == 5
    with pytest.raises(ValueError, match=r"gene 'b' is measured in 0"):
        fit_quantile_bins(
            _frame(np.column_stack([values[:, 0], np.full(40, np.nan)]), genes), genes, 4
        )


def test_round_trips_and_validation() -> None:
    genes = ["a", "b", "c"]
    bins = fit_quantile_bins(_frame(np.random.default_rng(2).normal(size=(30, 3)), genes), genes, 8)
    for restored in (
        QuantileBins.from_frame(bins.to_frame()),
        QuantileBins.from_dict(bins.to_dict()),
    ):
        assert restored.genes == bins.genes and restored.n_bins == 8
        np.testing.assert_array_equal(restored.edges, bins.edges)
    with pytest.raises(ValueError, match="n_bins"):
        fit_quantile_bins(_frame(np.zeros((5, 3)), genes), genes, 3)
    with pytest.raises(ValueError, match="non-decreasing"):
        QuantileBins.from_dict({"genes": ["a"], "edges": [[1.0, 0.0, 2.0]], "n_bins": 4})
