"""Evaluation figures: per-cohort and overall AUROC with CIs, pooled ROC and PR curves.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot (no global
figure registry, nothing to close, safe in parallel runners); Kedro's
``matplotlib.MatplotlibDataset`` saves it, kedro-mlflow logs it as an artifact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from icb_kedro.evaluation.metrics import auroc, average_precision
from icb_kedro.evaluation.summary import short_cohort_names, validate_predictions

# Legends move outside the axes when more models than this are drawn.
_LEGEND_INSIDE_MAX = 6


def _colours(n: int) -> list:
    """Distinct colours: tab10 up to 10 models, tab20 up to 20, then a continuous map."""
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def _legend(ax, n_entries: int, **kwargs) -> None:
    if n_entries > _LEGEND_INSIDE_MAX:
        ax.legend(
            loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False, **kwargs
        )
    else:
        ax.legend(loc="best", fontsize="small", **kwargs)


def _require(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}")


def _error_bars(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(2, n) non-negative distances from the mean to the CI ends (0 where the CI is missing)."""
    below = np.nan_to_num(mean - low, nan=0.0).clip(min=0)
    above = np.nan_to_num(high - mean, nan=0.0).clip(min=0)
    return np.vstack([below, above])


def plot_cohort_auroc(cohort_table: pd.DataFrame, protocol: str) -> Figure:
    """Per-cohort mean AUROC with bootstrap 95% CIs for every model of one
    protocol (0.5 = chance)."""
    _require(
        cohort_table,
        ("model", "protocol", "cohort", "auroc_mean", "ci_low", "ci_high"),
        "cohort_table",
    )
    rows = cohort_table[cohort_table["protocol"] == protocol]
    if rows.empty:
        raise ValueError(f"cohort_table has no rows for protocol {protocol!r}")
    cohorts = sorted(rows["cohort"].unique())
    names = short_cohort_names(cohorts)
    models = sorted(rows["model"].unique())
    width = max(7.0, 1.1 * len(cohorts) + 0.15 * len(models)) + (
        2.5 if len(models) > _LEGEND_INSIDE_MAX else 0.0
    )
    figure = Figure(layout="constrained", figsize=(width, 4.8))
    ax = figure.add_subplot()
    slot = 0.8 / len(models)  # models side by side within each cohort's slot
    for offset, (model, colour) in enumerate(zip(models, _colours(len(models)))):
        mine = rows[rows["model"] == model].set_index("cohort").reindex(cohorts)
        x = np.arange(len(cohorts)) - 0.4 + slot * (offset + 0.5)
        mean = mine["auroc_mean"].to_numpy(dtype=float)
        ax.errorbar(
            x,
            mean,
            yerr=_error_bars(mean, mine["ci_low"].to_numpy(float), mine["ci_high"].to_numpy(float)),
            fmt="o",
            markersize=4,
            capsize=2,
            linewidth=1,
            color=colour,
            label=model,
        )
    ax.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks(np.arange(len(cohorts)), [names[c] for c in cohorts], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(cohorts) - 0.4)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("held-out cohort")
    ax.set_ylabel("AUROC (mean over repeats, 95% CI)")
    ax.set_title(f"Per-cohort AUROC, protocol '{protocol}'")
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, len(models) + 1)
    return figure


def plot_roc_pr_curves(
    predictions: pd.DataFrame, protocol: str, models: Sequence[str] | None = None
) -> Figure:
    """Pooled ROC (left) and precision-recall (right) curves per model for one protocol.

    Pooled = all cohorts and repeats concatenated, so the curves mix cohorts whose score
    scales differ; they show overall shape, the per-cohort AUROC plot is the fair comparison.
    PR uses the responder class; its baseline is the pooled responder prevalence.
    """
    from sklearn.metrics import precision_recall_curve, roc_curve

    table = validate_predictions(predictions)
    table = table[table["protocol"] == protocol]
    if table.empty:
        raise ValueError(f"predictions have no rows for protocol {protocol!r}")
    available = sorted(table["model"].unique())
    chosen = available if models is None else list(models)
    absent = [m for m in chosen if m not in available]
    if absent:
        raise ValueError(
            f"models {absent} have no predictions in protocol {protocol!r}; available: {available}"
        )
    many = len(chosen) > _LEGEND_INSIDE_MAX
    figure = Figure(layout="constrained", figsize=(11.5 + (3.0 if many else 0.0), 5.0))
    ax_roc, ax_pr = figure.subplots(1, 2)
    prevalence = None
    for model, colour in zip(chosen, _colours(len(chosen))):
        rows = table[table["model"] == model]
        y, p = rows["y_true"].to_numpy(), rows["y_prob"].to_numpy()
        if y.min() == y.max():
            continue  # one class: no curve can be drawn
        fpr, tpr, _ = roc_curve(y, p)
        precision, recall, _ = precision_recall_curve(y, p)
        ax_roc.plot(
            fpr, tpr, color=colour, linewidth=1.2, label=f"{model} (AUROC {auroc(y, p):.2f})"
        )
        ap_label = f"{model} (AP {average_precision(y, p):.2f})"
        ax_pr.step(recall, precision, where="post", color=colour, linewidth=1.2, label=ap_label)
        prevalence = float(y.mean())
    ax_roc.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance")
    if prevalence is not None:
        ax_pr.axhline(
            prevalence,
            color="grey",
            linestyle="--",
            linewidth=1,
            label=f"prevalence ({prevalence:.2f})",
        )
    ax_roc.set(
        xlabel="false positive rate (1 - specificity)",
        ylabel="true positive rate (recall)",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax_pr.set(
        xlabel="recall (responders)", ylabel="precision (responders)", xlim=(0, 1), ylim=(0, 1.01)
    )
    ax_roc.set_title("ROC, pooled over cohorts and repeats")
    ax_pr.set_title("Precision-recall, pooled over cohorts and repeats")
    ax_roc.legend(loc="lower right", fontsize="x-small")
    if many:
        _legend(ax_pr, len(chosen) + 1)
    else:
        ax_pr.legend(loc="upper right", fontsize="x-small")
    figure.suptitle(f"Protocol '{protocol}'")
    return figure


def plot_reliability(
    predictions: pd.DataFrame, protocol: str, n_bins: int = 10, models: Sequence[str] | None = None
) -> Figure:
    """Reliability curves (observed response rate vs mean predicted probability, quantile
    bins, all held-out cohorts pooled) per model of one protocol; the diagonal is perfect
    calibration. Published signatures are left out unless named (their probabilities are a
    rescaled score)."""
    from icb_kedro.evaluation.calibration import reliability_curves

    table = validate_predictions(predictions)
    table = table[table["protocol"] == protocol]
    if table.empty:
        raise ValueError(f"predictions have no rows for protocol {protocol!r}")
    chosen = (
        sorted(m for m in table["model"].unique() if not m.startswith("sig_"))
        if models is None
        else list(models)
    )
    curves = reliability_curves(table[table["model"].isin(chosen)], n_bins=n_bins)
    figure = Figure(
        layout="constrained",
        figsize=(7.5 + (2.5 if len(chosen) > _LEGEND_INSIDE_MAX else 0.0), 5.5),
    )
    ax = figure.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for model, colour in zip(chosen, _colours(len(chosen))):
        rows = curves[curves["model"] == model]
        if rows.empty:
            continue  # one class in every held-out row: no curve
        ax.plot(
            rows["mean_prob"],
            rows["observed_rate"],
            marker="o",
            markersize=3,
            color=colour,
            linewidth=1.2,
            label=model,
        )
    ax.set(
        xlabel="mean predicted P(responder) in the bin",
        ylabel="observed responder rate in the bin",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.set_title(f"Reliability, protocol '{protocol}' ({n_bins} quantile bins, cohorts pooled)")
    _legend(ax, len(chosen) + 1)
    return figure


def plot_meta_forest(meta: pd.DataFrame, protocol: str) -> Figure:
    """Random-effects pooled AUROC per model (95% CI), with k, I^2 and tau^2 beside each row."""
    _require(
        meta, ("model", "protocol", "pooled_auroc", "ci_low", "ci_high", "k", "i2", "tau2"), "meta"
    )
    rows = meta[(meta["protocol"] == protocol) & meta["pooled_auroc"].notna()].sort_values(
        "pooled_auroc"
    )
    if rows.empty:
        raise ValueError(f"no pooled AUROC for protocol {protocol!r}")
    figure = Figure(layout="constrained", figsize=(8.5, max(3.0, 0.32 * len(rows) + 1.5)))
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    mean = rows["pooled_auroc"].to_numpy(float)
    ax.errorbar(
        mean,
        y,
        xerr=_error_bars(mean, rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)),
        fmt="s",
        markersize=4,
        capsize=2,
        linewidth=1,
        color="#1f77b4",
    )
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_yticks(y, rows["model"].tolist())
    for yi, (k, i2, tau2) in enumerate(zip(rows["k"], rows["i2"], rows["tau2"])):
        ax.annotate(
            f"k={k}  I²={i2:.0%}  τ²={tau2:.3f}",
            (1.0, yi),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize="x-small",
            annotation_clip=False,
        )
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("AUROC, random-effects pooled over cohorts (DerSimonian-Laird, 95% CI)")
    ax.set_title(f"Meta-analysis across cohorts, protocol {protocol}")
    ax.grid(axis="x", alpha=0.3)
    return figure


def plot_overall_auroc(overall: pd.DataFrame) -> Figure:
    """Unweighted mean AUROC over cohorts with 95% CI, one row per model,
    one colour per protocol."""
    _require(overall, ("model", "protocol", "auroc_mean", "ci_low", "ci_high"), "overall")
    if overall.empty:
        raise ValueError("overall summary is empty")
    protocols = list(dict.fromkeys(overall.sort_values("protocol")["protocol"]))
    order = (
        overall.groupby("model")["auroc_mean"].mean().sort_values().index.tolist()
    )  # best on top
    figure = Figure(layout="constrained", figsize=(8.0, max(3.0, 0.35 * len(order) + 1.5)))
    ax = figure.add_subplot()
    height = 0.8 / len(protocols)
    for offset, (protocol, colour) in enumerate(zip(protocols, _colours(len(protocols)))):
        rows = overall[overall["protocol"] == protocol].set_index("model").reindex(order)
        y = np.arange(len(order)) - 0.4 + height * (offset + 0.5)
        mean = rows["auroc_mean"].to_numpy(dtype=float)
        ax.errorbar(
            mean,
            y,
            xerr=_error_bars(mean, rows["ci_low"].to_numpy(float), rows["ci_high"].to_numpy(float)),
            fmt="o",
            markersize=4,
            capsize=2,
            linewidth=1,
            color=colour,
            label=protocol,
        )
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_yticks(np.arange(len(order)), order)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("AUROC, unweighted mean over cohorts (95% CI)")
    ax.set_ylabel("model")
    ax.set_title("Overall AUROC by model and protocol")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    return figure
