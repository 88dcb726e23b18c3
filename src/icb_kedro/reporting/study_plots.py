"""The study's own figures: panel coverage and PCA before/after harmonization, IC2Bert's
masked-token accuracy by epoch and its sample-size curves (the report and the pipelines
that write them as PNGs both draw them from here)."""

from __future__ import annotations

import matplotlib
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from icb_kedro.schema import COHORT, gene_columns


def plot_mlm_accuracy(history: pd.DataFrame, with_training_loss: bool = False) -> Figure:
    """Masked-token validation accuracy by epoch: one line per n_bins (averaged over held-out
    cohorts) when the history holds several bin counts, else one line per held-out cohort.

    ``with_training_loss``: a second panel with the training MLM loss of the same groups (the
    pretraining pipeline's PNG; the report shows the accuracy alone)."""
    needed = {"epoch", "val_accuracy"} | ({"train_loss"} if with_training_loss else set())
    if not needed <= set(history.columns):
        raise ValueError(
            f"pretraining history lacks columns {sorted(needed - set(history.columns))}"
        )
    by_bins = "n_bins" in history.columns and history["n_bins"].nunique() > 1
    group = "n_bins" if by_bins else ("held_out" if "held_out" in history.columns else None)
    figure = Figure(figsize=(12.5 if with_training_loss else 7.5, 4.2), layout="constrained")
    axes = figure.subplots(1, 2 if with_training_loss else 1, squeeze=False)[0]
    groups = list(history.groupby(group, sort=True)) if group else [("all", history)]
    # 13 held-out cohorts: tab20 so that no two curves share a colour (the default cycle has 10).
    colors = matplotlib.colormaps["tab20"].colors if len(groups) > 10 else [None] * len(groups)
    columns = ["val_accuracy", "train_loss"] if with_training_loss else ["val_accuracy"]
    for ax, column in zip(axes, columns, strict=True):
        for (key, rows), color in zip(groups, colors, strict=False):
            curve = rows.groupby("epoch")[column].mean()
            label = f"{key} bins" if by_bins else str(key).rsplit("_", 1)[-1]
            ax.plot(
                curve.index, curve.to_numpy(), marker="o", markersize=2, label=label, color=color
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("masked-token accuracy (validation)")
    axes[0].set_ylim(0, 1)
    bins = sorted(history["n_bins"].unique()) if "n_bins" in history.columns else []
    if len(bins) == 1:  # a model that guesses uniformly among the bins
        axes[0].axhline(1 / bins[0], color="grey", ls="--", lw=1, label="chance (1 / n_bins)")
    if with_training_loss:
        axes[1].set_ylabel("training MLM loss")
    # Outside the axes: with 13 held-out cohorts an inside legend covered the curves.
    axes[-1].legend(
        *axes[0].get_legend_handles_labels(),
        fontsize="small",
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
    )
    axes[0].set_title(
        "IC2Bert pretraining: MLM accuracy "
        + ("vs n_bins" if by_bins else f"per held-out cohort{f' ({bins[0]} bins)' if bins else ''}")
    )
    return figure


def plot_sample_size(table: pd.DataFrame) -> Figure:
    """Test AUROC vs number of labelled training samples, one line per held-out cohort."""
    needed = {"cohort", "n_train", "auroc"}
    if not needed <= set(table.columns):
        raise ValueError(f"sample-size table lacks columns {sorted(needed - set(table.columns))}")
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = figure.subplots()
    for cohort, rows in table.groupby("cohort", sort=True):
        stats = rows.groupby("n_train")["auroc"].agg(["mean", "std"]).reset_index()
        ax.errorbar(
            stats["n_train"],
            stats["mean"],
            yerr=stats["std"].fillna(0),
            capsize=2,
            marker="o",
            markersize=3,
            label=str(cohort).rsplit("_", 1)[-1],
        )
    ax.axhline(0.5, color="grey", ls="--", lw=1)
    ax.set_xlabel("labelled training samples of the held-out cohort")
    ax.set_ylabel("test AUROC")
    ax.set_ylim(0, 1)
    ax.legend(fontsize="small")
    ax.set_title("Sample-size curves")
    return figure


def plot_panel_coverage(panel_coverage: pd.DataFrame):
    """Heat map model panel x cohort: share of the panel's genes each cohort measures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from icb_kedro.evaluation.summary import short_cohort_names

    table = panel_coverage.assign(share=panel_coverage["n_present"] / panel_coverage["n_panel"])
    grid = table.pivot(index="panel", columns="cohort", values="share")
    counts = table.pivot(index="panel", columns="cohort", values="n_present")
    names = short_cohort_names(list(grid.columns))
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * grid.shape[1], 1.2 + 0.6 * grid.shape[0]))
    image = ax.imshow(grid.to_numpy(), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            share = grid.iat[i, j]
            ax.text(
                j,
                i,
                f"{int(counts.iat[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if share < 0.6 else "black",
            )
    ax.set_xticks(
        range(grid.shape[1]), [names[c] for c in grid.columns], rotation=40, ha="right", fontsize=8
    )
    ax.set_yticks(
        range(grid.shape[0]),
        [f"{p} ({int(table[table.panel == p].n_panel.iloc[0])})" for p in grid.index],
        fontsize=8,
    )
    ax.set_title("Genes of each model panel measured per cohort (number; colour = share)")
    fig.colorbar(image, ax=ax, fraction=0.03, label="share of panel genes")
    fig.tight_layout()
    return fig


def plot_pca_before_after(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    expression_combat: pd.DataFrame,
):
    """PCA (first two components) coloured by cohort: raw scale vs standardized vs ComBat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    panels = [
        ("log2(TPM+1), no correction", harmonized_expression),
        ("per-cohort standardized", expression_standardized),
        ("ComBat (inmoose)", expression_combat),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    cohorts = sorted(harmonized_expression[COHORT].unique())
    colours = plt.get_cmap("tab10")
    # Genes measured in every cohort only (the others are NaN where a cohort lacks them).
    common = [
        g for g in gene_columns(harmonized_expression) if harmonized_expression[g].notna().all()
    ]
    for ax, (title, table) in zip(axes, panels):
        genes = common
        pca = PCA(n_components=2, random_state=0)
        xy = pca.fit_transform(table[genes].to_numpy())
        for i, cohort in enumerate(cohorts):
            mask = (table[COHORT] == cohort).to_numpy()
            ax.scatter(
                xy[mask, 0], xy[mask, 1], s=10, alpha=0.7, color=colours(i % 10), label=cohort
            )
        var = pca.explained_variance_ratio_ * 100
        ax.set_title(title)
        ax.set_xlabel(f"PC1 ({var[0]:.1f}% var)")
        ax.set_ylabel(f"PC2 ({var[1]:.1f}% var)")
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, title="cohort")
    fig.suptitle(
        f"Cohort effects before and after harmonization ({len(harmonized_expression)} samples)"
    )
    fig.tight_layout()
    return fig
