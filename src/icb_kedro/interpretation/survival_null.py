"""Selected genes vs random genes in the same Cox models: :func:`random_gene_null`.

The genes tested are the models' top SHAP genes, chosen for their link to response on
these same patients (and response correlates with survival), so their p-values are
optimistic. The null asks how many of as many *random* panel genes reach p < alpha in the
same Cox models (:func:`~icb_kedro.interpretation.survival_cox.cox_per_gene`): an empirical
p for "the selected genes matter more for survival than arbitrary genes do", free of that
selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .survival_cox import cox_per_gene

NULL_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "n_selected",
    "n_selected_significant",
    "share_selected",
    "n_random",
    "share_random",
    "null_mean",
    "null_q95",
    "empirical_p",
    "alpha",
    "n_sets",
)


def random_gene_null(
    observed: pd.DataFrame,
    expression: pd.DataFrame,
    clinical: pd.DataFrame,
    pool: Sequence[str],
    n_random: int = 200,
    n_sets: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    penalizer: float = 0.0,
    min_events: int = 5,
) -> pd.DataFrame:
    """Selected genes vs random genes in the same Cox models, per endpoint.

    ``observed`` is :func:`cox_per_gene`'s table of the selected genes. ``n_random`` genes
    drawn (seeded) from ``pool`` minus the selected ones are fitted the same way; then
    ``n_sets`` random sets of as many genes as were fitted among the selected are drawn from
    them (with replacement), and ``empirical_p`` = (1 + sets with at least as many genes at
    p < alpha) / (1 + n_sets). A small empirical p says the selected genes carry more survival
    signal than arbitrary genes; a large one, that their nominal p-values are what any genes
    would give.
    """
    rng = np.random.default_rng(seed)
    selected = set(observed["gene"])
    candidates = sorted(g for g in pool if g not in selected and g in expression.columns)
    if not candidates:
        raise ValueError(
            "random_gene_null: no pool gene outside the selected ones is an expression column"
        )
    drawn = list(rng.choice(candidates, size=min(n_random, len(candidates)), replace=False))
    endpoints = sorted(observed["endpoint"].unique())
    random_table = cox_per_gene(
        expression, clinical, drawn, endpoints=endpoints, penalizer=penalizer, min_events=min_events
    )
    rows = []
    for endpoint in endpoints:
        mine = observed[(observed["endpoint"] == endpoint) & observed["p_value"].notna()]
        theirs = random_table.loc[
            (random_table["endpoint"] == endpoint) & random_table["p_value"].notna(), "p_value"
        ].to_numpy()
        m, hits = len(mine), int((mine["p_value"] < alpha).sum())
        row = {
            "endpoint": endpoint,
            "n_selected": m,
            "n_selected_significant": hits,
            "share_selected": hits / m if m else np.nan,
            "n_random": len(theirs),
            "share_random": float((theirs < alpha).mean()) if len(theirs) else np.nan,
            "null_mean": np.nan,
            "null_q95": np.nan,
            "empirical_p": np.nan,
            "alpha": alpha,
            "n_sets": n_sets,
        }
        if m and len(theirs):
            # Sets drawn with replacement from the fitted random genes: any number of selected
            # genes can be matched by a pool of fixed (small: each gene costs a Cox fit per
            # endpoint) size.
            significant = theirs < alpha
            null = significant[rng.integers(0, len(theirs), size=(n_sets, m))].sum(axis=1)
            row.update(
                null_mean=float(null.mean()),
                null_q95=float(np.quantile(null, 0.95)),
                empirical_p=float((1 + (null >= hits).sum()) / (1 + n_sets)),
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(NULL_COLUMNS))
