"""Report sections on what the top genes mean: enrichment in the published signatures and
survival (Cox per gene against a random-gene null, Kaplan-Meier by predicted group)."""

from __future__ import annotations

import pandas as pd

from icb_kedro.reporting.report import Image, NotRun, Section, Table, Text
from icb_kedro.reporting.study_inputs import StudyInputs, present, safe_figure


def section_enrichment(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import enrichment

    section = Section("Enrichment of top genes in ICB signatures")
    if not present(inputs.enrichment):
        return section.add(NotRun("Enrichment", "no gene ranking was available"))
    top_k = int(inputs.enrichment["top_k"].iloc[0])
    section.add(
        Text(
            "Hypergeometric over-representation (gseapy `enrich`, offline) of each model's "
            f"top-{top_k} genes in the 39 shipped signature gene sets. **Background = the model's "
            "input gene panel** (for a union of models: the union of their panels), because only "
            "panel genes can be top genes; BH q-values over every set with at least one "
            "background gene."
        )
    )
    for (setting, query), rows in inputs.enrichment.groupby(["setting", "query"], sort=True):
        best = rows[rows["tested"].astype(bool)].sort_values("p_value").head(8)
        section.add(
            Table(
                best[
                    [
                        "gene_set",
                        "overlap",
                        "set_size",
                        "query_size",
                        "background_size",
                        "odds_ratio",
                        "p_value",
                        "q_value",
                        "genes",
                    ]
                ],
                f"{setting} / {query}: most enriched sets",
                max_rows=8,
            )
        )
    for setting, rows in inputs.enrichment.groupby("setting", sort=True):
        query = "union" if (rows["query"] == "union").any() else sorted(rows["query"].unique())[0]
        chosen = rows[rows["query"] == query]
        section.add(
            safe_figure(
                f"enrichment_{setting}_{query}",
                lambda c=chosen, p=setting, q=query: enrichment.plot_enrichment(
                    c, f"{p} / {q}: top-{top_k} genes"
                ),
                f"Enrichment of the {query} top-{top_k} genes ({setting} setting).",
            )
        )
    return section


def section_survival(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import survival

    section = Section("Survival")
    section.add(
        Text(
            "Cox proportional hazards per top gene, **stratified by cohort** (each cohort its own "
            "baseline hazard), gene z-scored within cohort (HR per SD), OS and PFS separately (PFS "
            "is recorded for four cohorts), BH over genes per endpoint. Kaplan-Meier curves "
            "compare predicted responders and non-responders of each model (the `loco` protocol "
            "when available: every patient scored once by a model that never saw its cohort); "
            "log-rank p pooled over cohorts and a cohort-stratified Cox HR. **Caveat:** the genes "
            "tested are the models' top SHAP genes, chosen by their link to response on these same "
            "patients, and response correlates with survival; so their q-values are optimistic. "
            "The random-gene null below fits as many random common-panel genes the same way: only "
            "if the selected genes beat it do they carry more survival signal than arbitrary genes."
        )
    )
    if present(inputs.cox_null):
        for row in inputs.cox_null.itertuples():
            if pd.isna(row.empirical_p):
                section.add(
                    Text(
                        f"**{row.endpoint.upper()}, selected vs random genes**: not estimable "
                        "(no fitted selected or random gene)."
                    )
                )
                continue
            verdict = (
                "more than random genes" if row.empirical_p < 0.05 else "no more than random genes"
            )
            section.add(
                Text(
                    f"**{row.endpoint.upper()}, selected vs random genes**: "
                    f"{row.n_selected_significant} of {row.n_selected} selected genes at p < "
                    f"{row.alpha:g} ({row.share_selected:.0%}) vs {row.share_random:.0%} of "
                    f"{row.n_random} random genes; random sets of {row.n_selected}: mean "
                    f"{row.null_mean:.1f}, 95th percentile {row.null_q95:.0f}; empirical p = "
                    f"{row.empirical_p:.3f} ({row.n_sets} sets): {verdict}."
                )
            )
    if present(inputs.cox):
        fitted = inputs.cox[inputs.cox["hr"].notna()]
        for endpoint, rows in fitted.groupby("endpoint", sort=True):
            n_sig = int((rows["q_value"] < 0.05).sum())
            section.add(
                Text(f"**{endpoint.upper()}**: {n_sig} of {len(rows)} genes with BH q < 0.05.")
            )
        section.add(
            Table(
                fitted.sort_values("p_value")[
                    [
                        "endpoint",
                        "gene",
                        "models",
                        "n",
                        "n_events",
                        "n_cohorts",
                        "hr",
                        "ci_low",
                        "ci_high",
                        "p_value",
                        "q_value",
                    ]
                ],
                "Cox PH per gene (smallest p first)",
                max_rows=30,
            )
        )
        untested = inputs.cox[inputs.cox["hr"].isna()]
        if len(untested):
            section.add(
                Table(
                    untested[["endpoint", "gene", "models", "note"]].drop_duplicates(),
                    "Genes not tested (and why)",
                    max_rows=40,
                )
            )
        section.add(
            safe_figure(
                "cox_forest",
                lambda: survival.plot_forest(inputs.cox),
                "Hazard ratios with 95% CI (log scale).",
            )
        )
    else:
        section.add(NotRun("Cox per gene", "no gene ranking was available"))
    if present(inputs.km):
        section.add(Table(inputs.km, "Predicted responders vs non-responders", max_rows=40))
        for name, figure in sorted(inputs.km_figures.items()):
            section.add(Image(name, figure, name.replace("_", " ")))
    else:
        section.add(NotRun("Kaplan-Meier by prediction", "no predictions were available"))
    return section
