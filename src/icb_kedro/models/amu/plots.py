"""AMU figures: ROC and precision-recall per protocol, confusion matrices at training thresholds.

Built without pyplot (no global figure registry); every number in a legend is computed
from the predictions (spec 3.6: the original typed AUCs into its legends).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from icb_kedro.evaluation.metrics import auroc, average_precision


def _protocols(predictions: pd.DataFrame) -> list[str]:
    if predictions.empty:
        raise ValueError("AMU plots: the predictions table is empty")
    return sorted(predictions["protocol"].unique())


def plot_roc_pr(predictions: pd.DataFrame, fold_metrics: pd.DataFrame) -> Figure:
    """One column per protocol: ROC (top) and positive-class PR (bottom), one curve per cohort.

    Curves pool a cohort's trials; legends give the mean over trials of the per-fold AUROC
    / AP (the numbers the results table reports) and the pooled value in brackets.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    protocols = _protocols(predictions)
    figure = Figure(layout="constrained", figsize=(4.2 * len(protocols), 8.0))
    axes = np.asarray(figure.subplots(2, len(protocols), squeeze=False))
    for column, protocol in enumerate(protocols):
        ax_roc, ax_pr = axes[0, column], axes[1, column]
        rows = predictions[predictions["protocol"] == protocol]
        for cohort, group in rows.groupby("cohort", sort=True):
            y, p = group["y_true"].to_numpy(int), group["y_prob"].to_numpy(float)
            if y.min() == y.max():
                continue
            folds = fold_metrics[
                (fold_metrics["protocol"] == protocol) & (fold_metrics["cohort"] == cohort)
            ]
            label = cohort.rsplit("_", 1)[-1]
            fpr, tpr, _ = roc_curve(y, p)
            precision, recall, _ = precision_recall_curve(y, p)
            ax_roc.plot(
                fpr,
                tpr,
                linewidth=1.1,
                label=f"{label} {folds['auroc'].mean():.2f} ({auroc(y, p):.2f})",
            )
            ax_pr.step(
                recall,
                precision,
                where="post",
                linewidth=1.1,
                label=f"{label} {folds['auprc'].mean():.2f} ({average_precision(y, p):.2f})",
            )
        ax_roc.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        ax_pr.axhline(rows["y_true"].mean(), color="grey", linestyle="--", linewidth=0.8)
        ax_roc.set(
            title=f"{protocol}: ROC",
            xlabel="false positive rate",
            ylabel="true positive rate",
            xlim=(0, 1),
            ylim=(0, 1.01),
        )
        ax_pr.set(
            title=f"{protocol}: precision-recall (responders)",
            xlabel="recall",
            ylabel="precision",
            xlim=(0, 1),
            ylim=(0, 1.01),
        )
        ax_roc.legend(
            loc="lower right",
            fontsize="x-small",
            title="AUROC mean (pooled)",
            title_fontsize="x-small",
        )
        ax_pr.legend(
            loc="lower left", fontsize="x-small", title="AP mean (pooled)", title_fontsize="x-small"
        )
    figure.suptitle("AMU: ROC and precision-recall curves per protocol")
    return figure


def confusion_counts(predictions: pd.DataFrame) -> pd.DataFrame:
    """Per protocol: TN, FP, FN, TP summed over folds, each fold at its training-fitted
    threshold."""
    called = predictions["y_prob"].to_numpy() >= predictions["threshold"].to_numpy()
    truth = predictions["y_true"].to_numpy().astype(bool)
    table = pd.DataFrame(
        {
            "protocol": predictions["protocol"].to_numpy(),
            "tn": ~truth & ~called,
            "fp": ~truth & called,
            "fn": truth & ~called,
            "tp": truth & called,
        }
    )
    return (
        table.groupby("protocol", sort=True)[["tn", "fp", "fn", "tp"]]
        .sum()
        .astype(int)
        .reset_index()
    )


def plot_confusion_matrices(predictions: pd.DataFrame) -> Figure:
    """One 2x2 confusion matrix per protocol (counts summed over folds and cohorts)."""
    counts = confusion_counts(predictions)
    figure = Figure(layout="constrained", figsize=(3.4 * len(counts), 3.6))
    axes = np.atleast_1d(figure.subplots(1, len(counts), squeeze=False)[0])
    for ax, row in zip(axes, counts.itertuples(index=False)):
        matrix = np.array([[row.tn, row.fp], [row.fn, row.tp]])
        ax.imshow(matrix, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(
                j,
                i,
                str(value),
                ha="center",
                va="center",
                color="white" if value > matrix.max() / 2 else "black",
            )
        ax.set_xticks([0, 1], ["NR", "R"])
        ax.set_yticks([0, 1], ["NR", "R"])
        ax.set(xlabel="predicted", ylabel="true", title=row.protocol)
    figure.suptitle("AMU: confusion matrices, each fold at a threshold fitted on its training rows")
    return figure
