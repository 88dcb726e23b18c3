"""The baselines pipeline's own report: the summary markdown and the per-protocol figures.

:func:`baselines_summary_markdown` writes the settings line, the signature coverage on the
cohort panel and on the AMU matrix, the fit times and then the shared evaluation section
(``evaluation.summary.summary_markdown``); :func:`protocol_figures` draws one protocol's
per-cohort AUROC and pooled ROC/PR curves (``reporting.plots``), or a note when the
protocol was not run.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from icb_kedro.evaluation.protocols import AMU_PROTOCOL
from icb_kedro.evaluation.summary import summary_markdown
from icb_kedro.models.baselines.parameters import BaselinesConfig
from icb_kedro.models.baselines.signature_predictions import AMU_UNSCORABLE_METHODS


def _settings_line(config: BaselinesConfig) -> str:
    amu = config.amu_holdout
    features = (
        "all genes"
        if config.n_features is None
        else f"the {config.n_features} genes with the largest ANOVA F"
    )
    amu_genes = "all genes" if amu.n_features is None else f"{amu.n_features} genes"
    return (
        f"Models: panel `{config.panel}` of the per-cohort standardized expression, {features} "
        "(selected on each fold's training rows), hyper-parameters by "
        f"{config.inner_cv.n_splits}-fold inner CV on training rows (transfer: "
        f"`{config.transfer_search}` rows), decision threshold "
        f"`{config.threshold.method}` on `{config.threshold.source}` training "
        f"probabilities; AMU matrix: ln(ratio + {amu.pseudo_count:g}), {amu_genes}"
        f"{', SMOTE inside training rows' if amu.smote else ''}."
    )


def baselines_summary_markdown(
    overall: pd.DataFrame,
    cohort_table: pd.DataFrame,
    comparisons: pd.DataFrame,
    coverage: pd.DataFrame,
    search_log: pd.DataFrame,
    config: BaselinesConfig,
    amu_coverage: pd.DataFrame | None = None,
) -> str:
    """The baselines report: settings, signature coverage (cohort panel and AMU matrix), then
    the shared evaluation section (``config``: the typed ``params:baselines``)."""
    lines = [
        "# Baselines: classical models and published signatures",
        "",
        _settings_line(config),
        "",
    ]
    scored = coverage[coverage["status"].str.startswith("scored")]
    failed = coverage[coverage["status"] == "failed"]
    lines.append(
        f"Signatures: {len(scored)} of {len(coverage)} scored ({', '.join(scored['signature'])}); "
        f"{len(failed)} failed the coverage rule (> {config.signatures.min_coverage:.0%} of "
        "genes in the panel) or cannot be computed:"
    )
    lines.append("")
    lines += [f"- {row.signature}: {row.reason}" for row in failed.itertuples(index=False)]
    below = coverage[coverage["status"] == "scored_below_coverage"]
    lines += [
        f"- {row.signature} (scored below coverage): {row.reason}"
        for row in below.itertuples(index=False)
    ]
    if amu_coverage is not None and AMU_PROTOCOL in config.protocols:
        amu_scored = amu_coverage[amu_coverage["status"].str.startswith("scored")]
        lines += [
            "",
            "Signatures on the AMU matrix (`amu_holdout`, its genes as ln(ratio + "
            f"{config.amu_holdout.pseudo_count:g}), z-scored over its samples): "
            f"{len(amu_scored)} of {len(amu_coverage)} scored "
            f"({', '.join(amu_scored['signature']) or 'none'}), by the same coverage rule; "
            "the others fail it (table `baselines_amu_signature_coverage`).",
        ]
        # Also list signatures that pass coverage but cannot be computed on constituent ratios.
        unscorable = amu_coverage[
            amu_coverage["method"].isin(list(AMU_UNSCORABLE_METHODS))
            & (amu_coverage["status"] == "failed")
            & (amu_coverage["coverage"] > config.signatures.min_coverage)
        ]
        listed = pd.concat([amu_scored, unscorable])
        lines += [
            f"- {row.signature} (AMU matrix): {row.reason}"
            for row in listed.itertuples(index=False)
        ]
    lines += [
        "",
        "Signature models (`sig_*`) are fixed scores (resistance signatures sign-flipped); their "
        "`y_prob` is a logistic map of the score standardized on the fold's training rows, "
        "so their AUROC/AUPRC are the signature's own but their Brier score is not meaningful.",
        "",
    ]
    if len(search_log):
        seconds = search_log.groupby("model")["seconds"].sum().sort_values(ascending=False)
        lines.append(
            "Fit time per model (search + refit + out-of-fold threshold, summed over folds): "
            + ", ".join(f"{m} {s:.0f} s" for m, s in seconds.items())
        )
        lines.append("")
    lines.append(summary_markdown(overall, cohort_table, comparisons))
    return "\n".join(lines)


def _placeholder_figure(message: str) -> Figure:
    figure = Figure(figsize=(6, 2))
    figure.text(0.5, 0.5, message, ha="center", va="center")
    return figure


def protocol_figures(
    cohort_table: pd.DataFrame, predictions: pd.DataFrame, protocol: str
) -> tuple[Figure, Figure]:
    """Per-cohort AUROC with CIs and pooled ROC/PR curves of one protocol
    (a note if it was not run)."""
    from icb_kedro.reporting.plots import plot_cohort_auroc, plot_roc_pr_curves

    if not (predictions["protocol"] == protocol).any():
        note = _placeholder_figure(f"protocol '{protocol}' was not run in this configuration")
        return note, _placeholder_figure(f"protocol '{protocol}' was not run in this configuration")
    return plot_cohort_auroc(cohort_table, protocol), plot_roc_pr_curves(predictions, protocol)
