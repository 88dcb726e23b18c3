"""Kaplan-Meier curves by predicted response: :func:`kaplan_meier_by_prediction` (lifelines).

KM curves of predicted responders vs predicted non-responders of one model
(:func:`per_sample_calls`: one call per scored sample), with the (pooled) log-rank p the
papers use and, because cohorts differ in baseline survival, a cohort-stratified Cox HR of
the predicted group.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from icb_kedro.schema import COHORT, SAMPLE_KEY

from .survival_cox import fit_cox
from .survival_data import survival_frame


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
            fit = fit_cox(frame, "responder", 0.0, COHORT)
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
