"""The readable report section of the evaluation: per-protocol markdown tables and a caveat.

:func:`summary_markdown` renders the overall AUROC table, the optional random-effects
meta-analysis, the per-cohort AUROC grid and the significant paired differences of each
protocol, followed by :data:`CAVEAT` on AUROC noise in small cohorts;
:func:`short_cohort_names` gives the readable cohort labels also used by the plots. Public
names are re-exported by :mod:`~icb_kedro.evaluation.summary`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from icb_kedro.evaluation.cohort_tables import COHORT_SUMMARY_COLUMNS
from icb_kedro.evaluation.comparisons import ALL_COHORTS, COMPARISON_COLUMNS
from icb_kedro.schema import PROTOCOLS

# ----------------------------------------------------------------------------- markdown

CAVEAT = (
    "**How much to trust these numbers.** AUROC is very noisy at these cohort sizes. Under "
    "the null, one cohort's AUROC has an SD of 0.054 (Mariathasan, 42 R / 91 NR) to 0.18 "
    "(Padron 3/20, Riaz 4/10), so a single cohort needs an AUROC of about 0.59 (Mariathasan) "
    "to 0.82-0.88 (Riaz, Padron) to differ from chance at p < .05, and the 95% CI of an "
    "AUROC of 0.70 spans 0.60-0.80 at best (Mariathasan) and 0.35-1.0 at worst (Padron). A "
    "20% test split (protocol transfer_paper) holds only 2-12 responder x non-responder pairs in "
    "the six small cohorts (144 in Mariathasan), so a split's AUROC moves in steps of 0.08-0.5 "
    "and its SE at 0.70 is 0.23-0.39: a mean +- sd over 10 splits mostly reflects split noise; "
    "hence the out-of-fold protocols, which score every patient. An "
    "unweighted mean over 7 cohort AUROCs has SE of about 0.042, so differences in mean "
    "AUROC below about 0.08 are not significant unless tested paired and at the patient "
    "level, as the DeLong comparisons above are; a paired difference needs to reach "
    "0.14 (Mariathasan) to 0.51 (Padron) for 80% power within one cohort. Label noise caps "
    "what any score can reach: if 10% of responders and 10% of non-responders are "
    "mislabelled (cohorts differ in how they label stable disease), a perfect biological "
    "score has an expected AUROC of 0.90. (Figures: reference/signatures_and_statistics.md, "
    "section 1; exact Mann-Whitney null and Hanley-McNeil SEs.)"
)


def _fmt(value: float, digits: int = 3) -> str:
    return "NA" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _fmt_p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "NA"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def short_cohort_names(cohorts: list[str]) -> dict[str, str]:
    """Readable cohort labels: the last ``_`` part (``Melanoma_PD1_Hugo2016`` -> ``Hugo2016``) when
    unique."""
    short = {cohort: cohort.rsplit("_", 1)[-1] for cohort in cohorts}
    return short if len(set(short.values())) == len(short) else {c: c for c in cohorts}


def _protocol_order(protocols) -> list[str]:
    known = [p for p in PROTOCOLS if p in set(protocols)]
    return known + sorted(set(protocols) - set(known))


def summary_markdown(
    overall: pd.DataFrame,
    cohort_table: pd.DataFrame,
    comparisons: pd.DataFrame,
    meta: pd.DataFrame | None = None,
) -> str:
    """A readable report section: per protocol the overall AUROC table, the random-effects
    meta-analysis across cohorts (``meta``, optional), the per-cohort AUROC table, the
    significant paired differences, and a caveat on AUROC noise in small cohorts.

    Empty tables (e.g. ``pd.DataFrame()`` when no comparison was run) are allowed.
    """
    cohort_table = (
        cohort_table if len(cohort_table) else pd.DataFrame(columns=list(COHORT_SUMMARY_COLUMNS))
    )
    comparisons = (
        comparisons if len(comparisons) else pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    )
    comparisons = comparisons.assign(significant=comparisons["significant"].astype(bool))
    lines = ["## Model evaluation", ""]
    lines.append(
        "AUROC per model: computed on each repeat's pooled out-of-fold predictions (every "
        "labelled patient of the cohort scored once per repeat under transfer / within / loco; "
        "one 80/20 split per repeat under transfer_paper), averaged over repeats within each "
        "cohort, then the unweighted mean over "
        "cohorts; [95% CI] from a patient-level stratified bootstrap (patients resampled "
        "within cohorts, cohorts fixed). Paired differences: DeLong per cohort on the samples "
        "both models scored, combined across cohorts by random effects (DerSimonian-Laird), "
        "Benjamini-Hochberg q < 0.05 per protocol."
    )
    for protocol in _protocol_order(overall["protocol"].unique() if len(overall) else []):
        lines += ["", f"### Protocol `{protocol}`", ""]
        rows = overall[overall["protocol"] == protocol].sort_values("auroc_mean", ascending=False)
        shown = pd.DataFrame(
            {
                "model": rows["model"],
                "cohorts": rows["n_cohorts"],
                "AUROC [95% CI]": [
                    f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"
                    for m, lo, hi in zip(rows["auroc_mean"], rows["ci_low"], rows["ci_high"])
                ],
                "AUPRC": rows["auprc_mean"].map(_fmt),
                "accuracy": rows["accuracy_mean"].map(_fmt),
                "F1": rows["f1_mean"].map(_fmt),
                "Brier": rows["brier_mean"].map(_fmt),
            }
        )
        lines += [_markdown_table(shown), ""]
        if meta is not None and len(meta):
            pooled = meta[
                (meta["protocol"] == protocol) & meta["pooled_auroc"].notna()
            ].sort_values("pooled_auroc", ascending=False)
            if len(pooled):
                lines += [
                    "Random-effects meta-analysis across cohorts (DerSimonian-Laird; each cohort's "
                    "AUROC weighted by 1 / (its bootstrap variance + tau²); I² = share of the "
                    "spread that is between cohorts):",
                    "",
                    _markdown_table(
                        pd.DataFrame(
                            {
                                "model": pooled["model"],
                                "k": pooled["k"],
                                "pooled AUROC [95% CI]": [
                                    f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"
                                    for m, lo, hi in zip(
                                        pooled["pooled_auroc"], pooled["ci_low"], pooled["ci_high"]
                                    )
                                ],
                                "I²": pooled["i2"].map(
                                    lambda v: f"{v:.0%}" if pd.notna(v) else "-"
                                ),
                                "tau²": pooled["tau2"].map(lambda v: _fmt(v, 4)),
                                "p (heterogeneity)": pooled["p_heterogeneity"].map(_fmt_p),
                                "not estimable": pooled["not_estimable"].replace("", "-"),
                            }
                        )
                    ),
                    "",
                ]

        per_cohort = cohort_table[cohort_table["protocol"] == protocol]
        if len(per_cohort):
            names = short_cohort_names(sorted(per_cohort["cohort"].unique()))
            cells = per_cohort.assign(
                cell=[
                    f"{_fmt(m, 2)} [{_fmt(lo, 2)}, {_fmt(hi, 2)}]"
                    for m, lo, hi in zip(
                        per_cohort["auroc_mean"], per_cohort["ci_low"], per_cohort["ci_high"]
                    )
                ],
                short=per_cohort["cohort"].map(names),
            )
            grid = (
                cells.pivot(index="model", columns="short", values="cell")
                .reindex(rows["model"])
                .fillna("-")
            )
            grid = grid[[names[c] for c in sorted(names)]].reset_index()
            lines += [
                "Per-cohort AUROC, mean over repeats [95% CI]:",
                "",
                _markdown_table(grid),
                "",
            ]

        combined = comparisons[
            (comparisons["protocol"] == protocol) & (comparisons["cohort"] == ALL_COHORTS)
        ]
        significant = combined[combined["significant"]].sort_values("p")
        if combined.empty:
            lines.append("No paired comparisons were run for this protocol.")
        elif significant.empty:
            lines.append(
                "No paired AUROC difference is significant after BH adjustment "
                f"({len(combined)} model pairs tested across cohorts)."
            )
        else:
            lines.append(
                "Significant paired AUROC differences across cohorts (q < 0.05; "
                f"{len(significant)} of {len(combined)} pairs):"
            )
            lines.append("")
            for row in significant.itertuples(index=False):
                lines.append(
                    f"- {row.model_a} vs {row.model_b}: difference {row.diff:+.3f} "
                    f"(95% CI {_fmt(row.ci_low)} to {_fmt(row.ci_high)}; {row.n_cohorts} cohorts), "
                    f"p = {_fmt_p(row.p)}, q = {_fmt_p(row.q)}"
                )
        per_cohort = comparisons[
            (comparisons["protocol"] == protocol) & (comparisons["cohort"] != ALL_COHORTS)
        ]
        usable = np.isfinite(per_cohort["se"].astype(float)) & (per_cohort["se"].astype(float) > 0)
        left_out = sorted(set(per_cohort["cohort"]) - set(per_cohort.loc[usable, "cohort"]))
        if left_out:  # never silently: a cohort without a DeLong SE cannot enter the combination
            lines += [
                "",
                "Left out of every combined test (no DeLong SE: a test split with one class, e.g. "
                f"a single responder, or identical rankings): {', '.join(left_out)}.",
            ]
        cohort_level = per_cohort[per_cohort["significant"]]
        if len(cohort_level):
            count = (
                "1 per-cohort difference has"
                if len(cohort_level) == 1
                else f"{len(cohort_level)} per-cohort differences have"
            )
            lines += ["", f"Within single cohorts, {count} q < 0.05 (see the comparisons table)."]
    lines += ["", CAVEAT, ""]
    return "\n".join(lines)
