"""Does each fitted IC2Bert model learn? The learning check of the fine-tuning pipeline.

``learning_check_table``: per (model, protocol, cohort, repeat), the fit on training rows
(in-sample and inner-CV AUROC from the histories), the held-out AUROC of the pooled
out-of-fold predictions and the mean of the splits' own AUROCs, and the spread of held-out
probabilities; ``learning_check_summary`` averages it over cohorts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from icb_kedro.models.ic2bert.finetune_history import auroc_or_nan

LEARNING_CHECK_COLUMNS = (
    "model",
    "protocol",
    "cohort",
    "repeat",
    "n_splits",
    "n_train",
    "n_test",
    "train_auroc",
    "inner_cv_auroc",
    "test_auroc",
    "test_auroc_split_mean",
    "test_prob_sd",
)


def learning_check_table(predictions: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Does each fitted model learn? Per (model, protocol, cohort, repeat): its fit on its
    training rows (in-sample and inner-CV AUROC, mean over the repeat's splits), its held-out
    AUROC on the repeat's pooled out-of-fold predictions (as every results table) and, beside
    it, the mean of the splits' own AUROCs (splits holding one class skipped): a gap between
    the two shows fold models that rank on different scales, which pooling penalises. And the
    spread of its held-out probabilities (a near-constant predictor is a defect, whatever its
    AUROC)."""
    fits = history[history["member"].isin(["", "zero_shot"])] if len(history) else history
    fit = (
        fits.groupby(["model", "protocol", "held_out", "trial"])
        .agg(train_auroc=("train_auroc", "max"), inner_cv_auroc=("val_auroc", "max"))
        .reset_index()
        .rename(columns={"held_out": "cohort"})
        if len(fits)
        else pd.DataFrame(
            columns=["model", "protocol", "cohort", "trial", "train_auroc", "inner_cv_auroc"]
        )
    )
    rows = []
    for (model, protocol, cohort, repeat), group in predictions.groupby(
        ["model", "protocol", "cohort", "repeat"], sort=True
    ):
        splits = group.groupby("trial")
        fitted = fit[
            (fit["model"] == model)
            & (fit["protocol"] == protocol)
            & (fit["cohort"] == cohort)
            & fit["trial"].isin(splits.groups)
        ]
        split_aurocs = [
            auroc_or_nan(g["y_true"].to_numpy(), g["y_prob"].to_numpy()) for _, g in splits
        ]
        rows.append(
            {
                "model": model,
                "protocol": protocol,
                "cohort": cohort,
                "repeat": int(repeat),
                "n_splits": splits.ngroups,
                "n_train": int(round(splits["n_train"].first().mean())),
                "n_test": len(group),
                "train_auroc": pd.to_numeric(fitted["train_auroc"]).mean(),
                "inner_cv_auroc": pd.to_numeric(fitted["inner_cv_auroc"]).mean(),
                "test_auroc": auroc_or_nan(group["y_true"].to_numpy(), group["y_prob"].to_numpy()),
                "test_auroc_split_mean": float(np.nanmean(split_aurocs))
                if np.isfinite(split_aurocs).any()
                else float("nan"),
                "test_prob_sd": float(group["y_prob"].std(ddof=0)),
            }
        )
    return pd.DataFrame(rows, columns=list(LEARNING_CHECK_COLUMNS))


def learning_check_summary(check: pd.DataFrame) -> pd.DataFrame:
    """Mean over cohorts (of per-cohort means over repeats) per model and protocol."""
    per_cohort = check.groupby(["model", "protocol", "cohort"])[
        ["train_auroc", "inner_cv_auroc", "test_auroc", "test_auroc_split_mean", "test_prob_sd"]
    ].mean()
    summary = per_cohort.groupby(["model", "protocol"]).agg(["mean"]).droplevel(1, axis=1)
    summary["n_cohorts"] = per_cohort.groupby(["model", "protocol"])["test_auroc"].count()
    return summary.reset_index()
