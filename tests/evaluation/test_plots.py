"""Evaluation figures are matplotlib Figures with labelled axes that save to PNG."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from icb_kedro.evaluation.summary import cohort_summary, overall_summary
from icb_kedro.reporting.plots import plot_cohort_auroc, plot_overall_auroc, plot_roc_pr_curves


def assert_saves_png(figure: Figure, path) -> None:
    assert isinstance(figure, Figure) and figure.axes
    for ax in figure.axes:
        assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    figure.savefig(path)
    assert path.stat().st_size > 5_000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cohort_auroc_plot(predictions, tmp_path):
    table = cohort_summary(predictions, n_boot=50)
    figure = plot_cohort_auroc(table, "transfer")
    assert_saves_png(figure, tmp_path / "cohort.png")
    ax = figure.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["CohortA", "CohortB", "CohortC"]
    labels = ax.get_legend_handles_labels()[1]
    assert {"good", "random", "weak"} <= set(labels) and any("chance" in label for label in labels)
    with pytest.raises(ValueError, match="no rows for protocol"):
        plot_cohort_auroc(table, "amu_holdout")


def test_roc_pr_plot(predictions, tmp_path):
    figure = plot_roc_pr_curves(predictions, "loco")
    assert_saves_png(figure, tmp_path / "curves.png")
    roc, pr = figure.axes
    assert len(roc.get_lines()) == 3 + 1  # three models + chance diagonal
    assert any("prevalence" in label for label in pr.get_legend_handles_labels()[1])
    only_one = plot_roc_pr_curves(predictions, "loco", models=["good"])
    assert len(only_one.axes[0].get_lines()) == 2
    with pytest.raises(ValueError, match="have no predictions"):
        plot_roc_pr_curves(predictions, "loco", models=["absent"])


def test_overall_plot_with_many_models_puts_legend_outside(predictions, tmp_path):
    good = predictions[predictions["model"] == "good"]
    many = pd.concat([good.assign(model=f"model_{i}") for i in range(8)])
    overall = overall_summary(many[many["protocol"] == "loco"], n_boot=20)
    assert_saves_png(plot_overall_auroc(overall), tmp_path / "overall.png")
    figure = plot_roc_pr_curves(many, "loco")
    ax = figure.axes[1]
    legend = ax.get_legend()
    assert (
        legend is not None
        and legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted()).x0 > 1
    )
    assert_saves_png(figure, tmp_path / "many.png")
