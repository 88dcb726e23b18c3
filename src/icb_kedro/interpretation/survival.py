"""Do the top genes and the predictions matter for survival? (lifelines)

- :func:`cox_per_gene`: one Cox proportional-hazards model per gene and endpoint (OS,
  PFS), **stratified by cohort** (each cohort keeps its own baseline hazard: follow-up,
  disease and therapy differ), with the gene z-scored within each cohort so the hazard
  ratio is per within-cohort standard deviation. HR, 95% Wald CI, p and BH q per endpoint.
  The AMU paper fitted unstratified univariable Cox models on pooled cohorts (CD80 HR
  0.761, CCR3 HR 0.134); pooling cohorts with different follow-up confounds cohort with
  gene, hence the strata.
- :func:`random_gene_null`: the genes tested are the models' top SHAP genes, chosen for
  their link to response on these same patients (and response correlates with survival),
  so their p-values are optimistic. The null asks how many of as many *random* panel genes
  reach p < alpha in the same Cox models: an empirical p for "the selected genes matter
  more for survival than arbitrary genes do", free of that selection.
- :func:`kaplan_meier_by_prediction`: KM curves of predicted responders vs predicted
  non-responders of one model, with the (pooled) log-rank p the papers use and, because
  cohorts differ in baseline survival, a cohort-stratified Cox HR of the predicted group.

Samples without the endpoint (missing time or event) are excluded and counted in the
outputs (``n``, ``n_excluded``); nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from icb_kedro.schema import COHORT, SAMPLE_KEY

ENDPOINTS: dict[str, tuple[str, str]] = {
    "os": ("survival_time_os", "event_occurred_os"),
    "pfs": ("survival_time_pfs", "event_occurred_pfs"),
}
UNIT_TO_MONTHS: dict[str, float] = {
    "month": 1.0,
    "months": 1.0,
    "day": 1 / 30.4375,
    "days": 1 / 30.4375,
    "week": 7 / 30.4375,
    "weeks": 7 / 30.4375,
    "year": 12.0,
    "years": 12.0,
}
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


def survival_frame(clinical: pd.DataFrame, endpoint: str) -> tuple[pd.DataFrame, int]:
    """(``cohort, sample_key, time`` in months, ``event`` 0/1; number of samples excluded).

    Excluded: samples with a missing time or event for this endpoint. Raises on negative
    times, events other than 0/1, or unknown time units.
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")
    time_col, event_col = ENDPOINTS[endpoint]
    needed = [COHORT, SAMPLE_KEY, time_col, event_col, "survival_unit"]
    missing = [c for c in needed if c not in clinical.columns]
    if missing:
        raise ValueError(f"clinical table lacks columns {missing}")
    if clinical[SAMPLE_KEY].duplicated().any():
        raise ValueError("clinical table lists a sample_key twice")
    table = clinical[needed].copy()
    usable = table[time_col].notna() & table[event_col].notna()
    table = table[usable]
    units = table["survival_unit"].fillna("month").astype(str).str.strip().str.lower()
    unknown = sorted(set(units) - set(UNIT_TO_MONTHS))
    if unknown:
        raise ValueError(
            f"unknown survival_unit values {unknown}; expected one of {sorted(UNIT_TO_MONTHS)}"
        )
    time = table[time_col].astype(float) * units.map(UNIT_TO_MONTHS).to_numpy()
    if (time < 0).any():
        raise ValueError(
            f"{time_col} has negative times, e.g. sample "
            f"{table.loc[time < 0, SAMPLE_KEY].iloc[0]!r}"
        )
    event = table[event_col].astype(float)
    if not event.isin([0.0, 1.0]).all():
        raise ValueError(f"{event_col} must be 0/1, got {sorted(event.unique())[:5]}")
    out = pd.DataFrame(
        {
            COHORT: table[COHORT].to_numpy(),
            SAMPLE_KEY: table[SAMPLE_KEY].to_numpy(),
            "time": time.to_numpy(),
            "event": event.astype(int).to_numpy(),
        }
    )
    return out.reset_index(drop=True), int((~usable).sum())


def _zscore_within(values: pd.Series, groups: pd.Series) -> pd.Series:
    """z-score within each group; a constant group becomes 0 (carries no information)."""
    grouped = values.groupby(groups)
    sd = grouped.transform(lambda v: v.std(ddof=0))
    z = (values - grouped.transform("mean")) / sd.where(sd > 0)
    return z.fillna(0.0)


def _fit_cox(frame: pd.DataFrame, covariate: str, penalizer: float, strata: str | None) -> dict:
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
                    estimate = _fit_cox(frame, "z", penalizer, COHORT)
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


def per_sample_calls(predictions: pd.DataFrame) -> pd.DataFrame:
    """One call per scored sample: predicted responder if most of its folds call it so.

    A sample scored in several trials (``transfer``/``within``) is a predicted responder
    when ``y_prob >= threshold`` (the training-fitted threshold of each fold) in at least
    half of them; ``y_prob`` is averaged for display.
    """
    needed = {COHORT, SAMPLE_KEY, "y_prob", "threshold"}
    if not needed <= set(predictions.columns):
        raise ValueError(f"predictions lack columns {sorted(needed - set(predictions.columns))}")
    called = predictions.assign(
        call=(predictions["y_prob"] >= predictions["threshold"]).astype(float)
    )
    grouped = called.groupby([COHORT, SAMPLE_KEY], sort=True)
    out = grouped.agg(
        y_prob=("y_prob", "mean"), call_rate=("call", "mean"), n_folds=("call", "size")
    ).reset_index()
    out["predicted_responder"] = out["call_rate"] >= 0.5
    return out


def kaplan_meier_by_prediction(
    predictions: pd.DataFrame, clinical: pd.DataFrame, endpoint: str, title: str = ""
) -> tuple[dict, Figure]:
    """KM curves of predicted responders vs non-responders; log-rank and stratified Cox.

    Returns (summary row, figure). The summary holds ``n, n_events, n_pred_responders,
    n_excluded, median_months_responders/non_responders, logrank_p, hr, ci_low, ci_high,
    cox_p`` (HR of predicted responders vs non-responders, stratified by cohort; NaN if a
    group is empty or has no events).
    """
    from lifelines import KaplanMeierFitter
    from lifelines.statistics import logrank_test

    calls = per_sample_calls(predictions)
    surv, n_missing = survival_frame(
        clinical[clinical[SAMPLE_KEY].isin(calls[SAMPLE_KEY])], endpoint
    )
    data = surv.merge(calls[[SAMPLE_KEY, "predicted_responder"]], on=SAMPLE_KEY, how="inner")
    summary: dict = {
        "endpoint": endpoint,
        "n": len(data),
        "n_events": int(data["event"].sum()),
        "n_pred_responders": int(data["predicted_responder"].sum()),
        "n_excluded": int(len(calls) - len(data)),
    }
    groups = {
        "predicted responder": data[data["predicted_responder"]],
        "predicted non-responder": data[~data["predicted_responder"]],
    }
    fig = Figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.subplots()
    for (label, part), colour in zip(groups.items(), ("#c0392b", "#2c7fb8")):
        key = "median_months_" + (
            "responders" if label == "predicted responder" else "non_responders"
        )
        summary[key] = np.nan
        if len(part):
            fitter = KaplanMeierFitter(label=f"{label} (n={len(part)})").fit(
                part["time"], part["event"]
            )
            fitter.plot_survival_function(ax=ax, ci_show=True, color=colour)
            summary[key] = float(fitter.median_survival_time_)
    both = all(len(p) for p in groups.values()) and summary["n_events"] > 0
    summary.update(logrank_p=np.nan, hr=np.nan, ci_low=np.nan, ci_high=np.nan, cox_p=np.nan)
    if both:
        a, b = groups["predicted responder"], groups["predicted non-responder"]
        summary["logrank_p"] = float(
            logrank_test(a["time"], b["time"], a["event"], b["event"]).p_value
        )
        frame = data.assign(responder=data["predicted_responder"].astype(float))[
            ["time", "event", "responder", COHORT]
        ]
        frame = frame[frame.groupby(COHORT)["event"].transform("sum") > 0]
        try:
            fit = _fit_cox(frame, "responder", 0.0, COHORT)
            summary.update(
                hr=fit["hr"], ci_low=fit["ci_low"], ci_high=fit["ci_high"], cox_p=fit["p_value"]
            )
        except (
            Exception
        ):  # lifelines: non-convergence (e.g. perfect separation); the KM/log-rank still stand
            pass
    ax.set_xlabel("months")
    ax.set_ylabel(f"{endpoint.upper()} probability")
    ax.set_title(
        (title or "Kaplan-Meier by predicted response")
        + f"\nlog-rank p = {summary['logrank_p']:.3g}; stratified HR = {summary['hr']:.2f}",
        fontsize=9,
    )
    ax.set_ylim(0, 1.02)
    return summary, fig
