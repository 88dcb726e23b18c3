"""Report sections on the data and the models' results: cohorts and harmonization,
performance (+ calibration). Whether the models learn: ``sections_training``."""

from __future__ import annotations

from icb_kedro.reporting.report import Image, NotRun, Section, Table, Text, table_block
from icb_kedro.reporting.study_inputs import PROTOCOL_TITLES, StudyInputs, present, safe_figure


def section_cohorts(inputs: StudyInputs) -> Section:
    section = Section("Cohorts and harmonization")
    n = len(inputs.cohort_summary) if present(inputs.cohort_summary) else 0
    rule = (
        str(inputs.cohort_summary["label_rule"].iloc[0])
        if n and "label_rule" in inputs.cohort_summary
        else "response"
    )
    section.add(
        Text(
            f"{n} bulk RNA-seq ICB cohorts (bhklab PredictioR curation), log2(TPM+1). Each model "
            "reads its own gene panel; a gene a cohort does not measure is never made up here: "
            "each model's missing-gene policy says what it does (IC2Bert: a [MISSING] token; AMU: "
            "the cohort is left out; baselines: training-row means; signatures: the panel shared "
            f"by all cohorts). Labels: `{rule}` (counts under the strict RECIST rule beside them). "
            "Unlabelled samples are used only for self-supervised pretraining."
        )
    )
    if n:
        # Settings shared by every cohort (label rule, standardization, ComBat) are said once,
        # not repeated in each row; one-arm cohorts show "-" for arms.
        table = inputs.cohort_summary.copy()
        shared = [
            c
            for c in ("label_rule", "standardization", "combat")
            if c in table and table[c].nunique(dropna=False) == 1
        ]
        if shared:
            section.add(
                Text(
                    "Every cohort: "
                    + "; ".join(f"{c.replace('_', ' ')}: {table[c].iloc[0]}" for c in shared)
                    + "."
                )
            )
        if "arms" in table:
            table["arms"] = table["arms"].fillna("-").replace("", "-")
        section.add(
            table_block(
                table.drop(columns=shared),
                "Samples per cohort: cancer, therapy, study arms, labels, "
                "genes on file and per model panel",
                max_rows=20,
            )
        )
    if inputs.coverage_figure is not None:
        section.add(
            Image(
                "panel_coverage",
                inputs.coverage_figure,
                "Genes of each model panel measured per cohort (number; "
                "colour = share of the panel).",
            )
        )
    if inputs.pca_figure is not None:
        section.add(
            Image(
                "harmonization_pca",
                inputs.pca_figure,
                "PCA of all samples before and after per-cohort standardisation and ComBat "
                "(coloured by cohort).",
            )
        )
    else:
        section.add(
            NotRun("Harmonization PCA", "the harmonized expression tables were not available")
        )
    return section


def section_performance(inputs: StudyInputs) -> Section:
    from icb_kedro.reporting import plots

    section = Section("Prediction performance")
    if not present(inputs.predictions):
        return section.add(
            NotRun("Model evaluation", "no model pipeline has written predictions yet")
        )
    if inputs.evaluation_source:
        section.add(Text(inputs.evaluation_source))
    if present(inputs.meta):
        # Leads the section: the pooled estimate that accounts for between-cohort
        # heterogeneity (issue 14); the unweighted means and per-cohort tables follow.
        section.add(
            Text(
                "Random-effects meta-analysis of AUROC across cohorts (DerSimonian-Laird): each "
                "cohort's AUROC weighted by 1 / (its patient-bootstrap variance + tau²). I² is the "
                "share of the spread between cohorts that is not sampling noise; "
                "cohorts whose test rows hold one class are listed as not estimable."
            )
        )
        for protocol in [
            p
            for p in ("transfer", "loco", "within", "amu_holdout")
            if (inputs.meta["protocol"] == p).any()
        ]:
            if inputs.meta.loc[inputs.meta["protocol"] == protocol, "pooled_auroc"].notna().any():
                section.add(
                    safe_figure(
                        f"meta_forest_{protocol}",
                        lambda p=protocol: plots.plot_meta_forest(inputs.meta, p),
                        "Pooled AUROC per model (95% CI, k cohorts, I², tau²), "
                        f"protocol {protocol}.",
                    )
                )
    if inputs.evaluation_markdown:
        section.add(Text(inputs.evaluation_markdown))
    if present(inputs.overall):
        section.add(
            safe_figure(
                "overall_auroc",
                lambda: plots.plot_overall_auroc(inputs.overall),
                "Unweighted mean AUROC over cohorts with patient-level bootstrap 95% CI.",
            )
        )
        shown = inputs.overall.sort_values(["protocol", "auroc_mean"], ascending=[True, False])
        section.add(
            Table(
                shown[
                    [
                        c
                        for c in (
                            "protocol",
                            "model",
                            "n_cohorts",
                            "auroc_mean",
                            "ci_low",
                            "ci_high",
                            "auprc_mean",
                            "accuracy_mean",
                            "f1_mean",
                            "brier_mean",
                        )
                        if c in shown.columns
                    ]
                ],
                "Overall AUROC per model and protocol",
                max_rows=200,
            )
        )
    section.subsections.append(section_calibration(inputs))
    for protocol in sorted(inputs.predictions["protocol"].unique()):
        sub = Section(f"Protocol {protocol}")
        sub.add(Text(PROTOCOL_TITLES.get(protocol, protocol)))
        if present(inputs.cohort_table) and (inputs.cohort_table["protocol"] == protocol).any():
            sub.add(
                safe_figure(
                    f"cohort_auroc_{protocol}",
                    lambda p=protocol: plots.plot_cohort_auroc(inputs.cohort_table, p),
                    f"Per-cohort AUROC (mean over repeats, 95% CI), protocol {protocol}.",
                )
            )
        sub.add(
            safe_figure(
                f"roc_pr_{protocol}",
                lambda p=protocol: plots.plot_roc_pr_curves(inputs.predictions, p),
                "ROC and precision-recall curves pooled over cohorts and repeats, "
                f"protocol {protocol}.",
            )
        )
        if present(inputs.comparisons):
            significant = inputs.comparisons[
                (inputs.comparisons["protocol"] == protocol)
                & inputs.comparisons["significant"].astype(bool)
            ]
            tested = inputs.comparisons[inputs.comparisons["protocol"] == protocol]
            sub.add(
                Text(
                    "Paired AUROC comparisons (DeLong per cohort, combined across cohorts, BH): "
                    f"{len(significant)} of {len(tested)} tests have q < 0.05."
                )
            )
            if len(significant):
                sub.add(
                    Table(
                        significant[
                            [
                                "model_a",
                                "model_b",
                                "cohort",
                                "auroc_a",
                                "auroc_b",
                                "diff",
                                "ci_low",
                                "ci_high",
                                "p",
                                "q",
                            ]
                        ],
                        "Significant paired differences",
                        max_rows=40,
                    )
                )
        section.subsections.append(sub)
    return section


def section_calibration(inputs: StudyInputs) -> Section:
    """Reliability curves and the Brier decomposition: does P(response) = 0.7 mean 7 in 10?"""
    from icb_kedro.reporting import plots

    section = Section("Calibration")
    if not present(inputs.calibration):
        return section.add(
            NotRun("Calibration", "the evaluation pipeline has not written results_calibration")
        )
    pooled = inputs.calibration[inputs.calibration["scope"] == "pooled"]
    n_bins = int(
        pooled["n_bins"].max()
    )  # as configured (a model with tied probabilities may use fewer)
    section.add(
        Text(
            "Brier score = reliability - resolution + uncertainty (+ within-bin variance), over "
            f"{n_bins} quantile bins of the predicted probability, held-out cohorts pooled: "
            "reliability (lower is better) is the gap between predicted and observed response "
            "rates, resolution (higher is better) how well the bins separate, uncertainty the "
            "Brier score of predicting the prevalence. Calibration slope: logistic recalibration "
            "of the outcome on logit(p); 1 is ideal, below 1 means probabilities too extreme "
            "(overfitting), above 1 too timid. Calibration-in-the-large: observed rate minus mean "
            "predicted probability. No post-hoc recalibration is applied: probabilities are as the "
            "models give them."
        )
    )
    for protocol in [
        p for p in ("transfer", "loco", "within", "amu_holdout") if (pooled["protocol"] == p).any()
    ]:
        if present(inputs.predictions) and (inputs.predictions["protocol"] == protocol).any():
            section.add(
                safe_figure(
                    f"reliability_{protocol}",
                    lambda p=protocol: plots.plot_reliability(inputs.predictions, p, n_bins=n_bins),
                    f"Reliability curves, protocol {protocol} (published signatures left out: "
                    "their probabilities are rescaled scores).",
                )
            )
    columns = [
        "protocol",
        "model",
        "n",
        "observed_rate",
        "mean_prob",
        "calibration_in_the_large",
        "calibration_slope",
        "brier",
        "reliability",
        "resolution",
        "uncertainty",
    ]
    shown = pooled.sort_values(["protocol", "brier"])[columns]
    section.add(
        Table(
            shown,
            "Calibration per model and protocol, held-out cohorts pooled (per-cohort rows: "
            "results_calibration)",
            max_rows=200,
        )
    )
    return section
