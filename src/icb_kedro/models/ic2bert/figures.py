"""Figures of the IC2Bert fine-tuning pipeline (matplotlib, imported inside the functions).

``auroc_figure``: test AUROC per held-out cohort and protocol; ``sample_size_figure``: test
AUROC against the number of balanced fine-tuning samples.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def auroc_figure(fold_metrics: pd.DataFrame):
    """Test AUROC per held-out cohort and protocol (mean +/- sd over trials)."""
    import matplotlib.pyplot as plt

    from icb_kedro.evaluation.summary import short_cohort_names

    table = fold_metrics.assign(arm=fold_metrics["model"] + " / " + fold_metrics["protocol"])
    stats = table.groupby(["cohort", "arm"])["auroc"].agg(["mean", "std"]).reset_index()
    cohorts = sorted(stats["cohort"].unique())
    arms = sorted(stats["arm"].unique())
    names = short_cohort_names(cohorts)
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(cohorts)), 4))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        rows = stats[stats["arm"] == arm].set_index("cohort").reindex(cohorts)
        axis.bar(
            np.arange(len(cohorts)) + i * width,
            rows["mean"],
            width,
            yerr=rows["std"].fillna(0),
            label=arm,
            capsize=2,
        )
    axis.axhline(0.5, color="grey", lw=0.8, ls="--")
    axis.set_xticks(
        np.arange(len(cohorts)) + width * (len(arms) - 1) / 2,
        [names[c] for c in cohorts],
        rotation=30,
        ha="right",
    )
    axis.set(ylabel="test AUROC", ylim=(0, 1), title="IC2Bert by held-out cohort")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def sample_size_figure(summary: pd.DataFrame):
    """Test AUROC against the number of balanced fine-tuning samples (0 = zero-shot)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for cohort, rows in summary.groupby("cohort"):
        stats = rows.groupby("n_train")["auroc"].agg(["mean", "std"]).reset_index()
        axis.errorbar(
            stats["n_train"],
            stats["mean"],
            yerr=stats["std"].fillna(0),
            marker="o",
            capsize=3,
            label=cohort,
        )
    axis.axhline(0.5, color="grey", lw=0.8, ls="--")
    axis.set(
        xlabel="balanced fine-tuning samples (0 = zero-shot head)",
        ylabel="test AUROC",
        ylim=(0, 1),
        title="IC2Bert sample-size analysis",
    )
    if len(summary):
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
