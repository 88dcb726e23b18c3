"""Cox proportional hazards per gene, stratified by cohort, and its forest plot (lifelines).

:func:`cox_per_gene`: one Cox proportional-hazards model per gene and endpoint (OS, PFS),
**stratified by cohort** (each cohort keeps its own baseline hazard: follow-up, disease and
therapy differ), with the gene z-scored within each cohort so the hazard ratio is per
within-cohort standard deviation. HR, 95% Wald CI, p and BH q per endpoint. The AMU paper
fitted unstratified univariable Cox models on pooled cohorts (CD80 HR 0.761, CCR3 HR
0.134); pooling cohorts with different follow-up confounds cohort with gene, hence the
strata. :func:`plot_forest` draws the table; ``fit_cox`` is the one Cox fit also used by
the Kaplan-Meier analysis (:mod:`icb_kedro.interpretation.survival_km`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from icb_kedro.schema import COHORT, SAMPLE_KEY

from .survival_data import ENDPOINTS, survival_frame

COX_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "gene",
    "n",
    "n_events",
    "n_cohorts",
    "n_excluded",
    "coef",
    "se",
    "hr",
    "ci_low",
    "ci_high",
    "p_value",
    "q_value",
    "note",
)


def _zscore_within(values: pd.Series, groups: pd.Series) -> pd.Series:
    """z-score within each group; a constant group becomes 0 (carries no information)."""
    grouped = values.groupby(groups)
    sd = grouped.transform(lambda v: v.std(ddof=0))
    z = (values - grouped.transform("mean")) / sd.where(sd > 0)
    return z.fillna(0.0)


def fit_cox(frame: pd.DataFrame, covariate: str, penalizer: float, strata: str | None) -> dict:
    from lifelines import CoxPHFitter

    model = CoxPHFitter(penalizer=penalizer)
    model.fit(frame, duration_col="time", event_col="event", strata=[strata] if strata else None)
    row = model.summary.loc[covariate]
    return {
        "coef": float(row["coef"]),
        "se": float(row["se(coef)"]),
        "hr": float(row["exp(coef)"]),
        "ci_low": float(row["exp(coef) lower 95%"]),
        "ci_high": float(row["exp(coef) upper 95%"]),
        "p_value": float(row["p"]),
    }


def cox_per_gene(
    expression: pd.DataFrame,
    clinical: pd.DataFrame,
    genes: Sequence[str],
    endpoints: Sequence[str] = ("os", "pfs"),
    penalizer: float = 0.0,
    min_events: int = 5,
) -> pd.DataFrame:
    """Per gene and endpoint, a cohort-stratified Cox model on the within-cohort z-scored gene.

    ``expression`` has ``cohort, sample_key`` and the gene columns (one row per sample).
    Genes with fewer than ``min_events`` events (or a failed fit) get NaN estimates and a
    ``note``; BH q-values are computed per endpoint over the genes that were fitted.
    """
    from scipy.stats import false_discovery_control

    missing = [g for g in genes if g not in expression.columns]
    if missing:
        raise ValueError(f"{len(missing)} genes are not expression columns, e.g. {missing[:5]}")
    for column in (COHORT, SAMPLE_KEY):
        if column not in expression.columns:
            raise ValueError(f"expression lacks column {column!r}")
    rows = []
    for endpoint in endpoints:
        surv, n_missing = survival_frame(clinical, endpoint)
        data = surv.merge(
            expression[[SAMPLE_KEY, COHORT, *genes]],
            on=SAMPLE_KEY,
            how="inner",
            suffixes=("", "_expr"),
        )
        if (data[COHORT] != data[f"{COHORT}_expr"]).any():
            raise ValueError(
                "clinical and expression tables disagree on the cohort of some samples"
            )
        n_excluded = n_missing + (len(surv) - len(data))
        for gene in genes:
            frame = pd.DataFrame(
                {
                    "time": data["time"],
                    "event": data["event"],
                    "z": _zscore_within(data[gene].astype(float), data[COHORT]),
                    COHORT: data[COHORT],
                }
            )
            informative = (
                frame.groupby(COHORT)["event"].transform("sum") > 0
            )  # strata without events add nothing
            frame = frame[informative]
            base = {
                "endpoint": endpoint,
                "gene": gene,
                "n": len(frame),
                "n_events": int(frame["event"].sum()),
                "n_cohorts": int(frame[COHORT].nunique()),
                "n_excluded": int(n_excluded + (~informative).sum()),
                "note": "",
            }
            estimate = dict.fromkeys(("coef", "se", "hr", "ci_low", "ci_high", "p_value"), np.nan)
            if base["n_events"] < min_events:
                base["note"] = f"fewer than {min_events} events"
            else:
                try:
                    estimate = fit_cox(frame, "z", penalizer, COHORT)
                except Exception as error:  # lifelines raises several types on non-convergence
                    base["note"] = f"fit failed: {type(error).__name__}"
            rows.append({**base, **estimate})
    table = pd.DataFrame(rows)
    table["q_value"] = np.nan
    for _, index in table.groupby("endpoint").groups.items():
        fitted = table.loc[index, "p_value"].notna()
        if fitted.any():
            fitted_index = fitted[fitted].index
            table.loc[fitted_index, "q_value"] = false_discovery_control(
                table.loc[fitted_index, "p_value"].to_numpy(), method="bh"
            )
    return table[list(COX_COLUMNS)]


def plot_forest(cox_table: pd.DataFrame, title: str = "", max_genes: int = 30) -> Figure:
    """Forest plot: HR and 95% CI per gene (log scale), one panel per endpoint."""
    endpoints = [e for e in ENDPOINTS if e in set(cox_table["endpoint"])] or sorted(
        cox_table["endpoint"].unique()
    )
    fitted = cox_table[cox_table["hr"].notna()]
    genes = (
        fitted.groupby("gene")["p_value"]
        .min()
        .sort_values(kind="mergesort")
        .head(max_genes)
        .index.tolist()
        if len(fitted)
        else []
    )
    n_panels = max(len(endpoints), 1)
    fig = Figure(figsize=(4.2 * n_panels, 0.28 * max(len(genes), 1) + 1.8), layout="constrained")
    axes = fig.subplots(1, n_panels, sharey=True, squeeze=False)
    for ax, endpoint in zip(axes[0], endpoints):
        part = fitted[fitted["endpoint"] == endpoint].set_index("gene").reindex(genes)
        y = np.arange(len(genes))
        significant = (part["q_value"] < 0.05).to_numpy()
        colours = np.where(significant, "#c0392b", "#34495e")
        ax.errorbar(
            part["hr"],
            y,
            xerr=[part["hr"] - part["ci_low"], part["ci_high"] - part["hr"]],
            fmt="none",
            ecolor="#7f8c8d",
            elinewidth=1,
        )
        ax.scatter(part["hr"], y, c=colours, s=18, zorder=3)
        ax.axvline(1.0, color="black", lw=0.7, ls="--")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(y, genes, fontsize=7)
        ax.set_xlabel("HR per within-cohort SD (95% CI)")
        ax.set_title(endpoint.upper())
    axes[0][0].invert_yaxis()
    fig.suptitle(title or "Cox PH per gene, stratified by cohort (red: BH q < 0.05)", fontsize=10)
    return fig
