"""AMU's fold results put together: the combined predictions, the learning check, the report.

:func:`combined_predictions` stacks the study and per-cohort predictions into one validated
table; :func:`learning_table` sets each fold's fit on its own training rows beside its
held-out AUROC (telling an unfitted model from a failure to transfer); :func:`report_markdown`
writes the markdown summary (honest vs leaky vs published AUROC, per-cohort AUROC, leakage
audit). Imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from icb_kedro.evaluation.summary import validate_predictions
from icb_kedro.schema import PREDICTION_COLUMNS, SAMPLE_KEY

from .protocol_runs import HONEST_PROTOCOL, LEAKY_PROTOCOL, STUDY_PROTOCOLS

PUBLISHED_AUROC = 0.941  # AMU paper, Table 2, validation on the oversampled 280 rows (spec 1.8)
LEARNING_COLUMNS = (
    "protocol", "cohort", "repeat", "trial", "n_train", "n_synthetic", "epochs", "final_loss",
    "train_auroc", "test_auroc", "fit_seconds",
)  # fmt: skip


def combined_predictions(*tables: pd.DataFrame) -> pd.DataFrame:
    """The study and per-cohort predictions in one validated table."""
    frames = [t for t in tables if len(t)]
    if not frames:
        raise ValueError("amu produced no predictions: every protocol list is empty")
    combined = validate_predictions(pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)])
    return combined.sort_values(
        ["protocol", "cohort", "repeat", "trial", SAMPLE_KEY], kind="stable"
    ).reset_index(drop=True)


def learning_table(predictions: pd.DataFrame, *weights: dict[str, Any]) -> pd.DataFrame:
    """Per fold, the fit on its own training rows beside the held-out AUROC.

    Training AUROC is on the real training rows (no SMOTE rows); test AUROC on that one
    split's test rows (NaN where they hold one class; a K-fold repeat's pooled AUROC is in
    ``fold_metrics_amu``). A held-out AUROC near 0.5 with a training AUROC near 0.5 is an
    unfitted model, not evidence about transfer or leakage.
    """
    from icb_kedro.evaluation.metrics import auroc

    test_auroc = {
        (protocol, cohort, int(trial)): auroc(rows["y_true"].to_numpy(), rows["y_prob"].to_numpy())
        for (protocol, cohort, trial), rows in predictions.groupby(
            ["protocol", "cohort", "trial"], sort=False
        )
    }
    records = []
    for table in weights:
        for fit in table.values():
            key = (fit["protocol"], fit["cohort"], int(fit["trial"]))
            records.append(
                (*key[:2], int(fit["repeat"]), key[2], int(fit["n_train"]), int(fit["n_synthetic"]),
                 len(fit["loss_history"]), float(fit["loss_history"][-1]),
                 float(fit["train_auroc"]), test_auroc.get(key, float("nan")),
                 float(fit["fit_seconds"]))
            )  # fmt: skip
    frame = pd.DataFrame(records, columns=list(LEARNING_COLUMNS))
    return frame.sort_values(["protocol", "cohort", "repeat", "trial"], kind="stable").reset_index(
        drop=True
    )


def report_markdown(
    overall: pd.DataFrame,
    cohort_table: pd.DataFrame,
    audit: pd.DataFrame,
    learning: pd.DataFrame | None = None,
) -> str:
    """Markdown: AUROC per protocol (honest vs leaky vs published) beside the training fit,
    per-cohort AUROC, leakage audit."""
    lines = ["## AMU (PaddlePaddle re-implementation)", ""]
    fit = pd.DataFrame(columns=["train", "epochs"])
    if learning is not None:
        fit = learning.groupby("protocol").agg(
            train=("train_auroc", "mean"), epochs=("epochs", "max")
        )
    lines += [
        "| protocol | cohorts | AUROC mean [95% CI] | AUPRC | accuracy | F1 | training "
        "AUROC | epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in overall.sort_values("protocol").itertuples(index=False):
        fitted = row.protocol in fit.index
        train = f"{fit.loc[row.protocol, 'train']:.3f}" if fitted else "-"
        epochs = f"{fit.loc[row.protocol, 'epochs']}" if fitted else "-"
        lines.append(
            f"| {row.protocol} | {row.n_cohorts} | {row.auroc_mean:.3f} [{row.ci_low:.3f}, "
            f"{row.ci_high:.3f}] | {row.auprc_mean:.3f} | {row.accuracy_mean:.3f} | "
            f"{row.f1_mean:.3f} | {train} | {epochs} |"
        )
    by_protocol = overall.set_index("protocol")["auroc_mean"]
    lines.append("")
    lines.append(
        f"Published AUROC on the oversampled validation rows: {PUBLISHED_AUROC:.3f} "
        "(paper, Table 2)."
    )
    if {HONEST_PROTOCOL, LEAKY_PROTOCOL} <= set(by_protocol.index):
        honest, leaky = by_protocol[HONEST_PROTOCOL], by_protocol[LEAKY_PROTOCOL]
        lines.append(
            f"Honest protocol (split first, SMOTE inside training rows): {honest:.3f}; the paper's "
            "leaky protocol (duplicate responders, then split) with the same model and seeds: "
            f"{leaky:.3f} ({leaky - honest:+.3f} from leakage; meaningful only where the training "
            "AUROC shows a model that fits its training rows)."
        )
    if len(audit):
        share = audit["n_test_copies_of_train"].sum() / audit["n_test"].sum()
        lines.append(
            f"In the leaky protocol {audit['n_test_copies_of_train'].mean():.1f} of "
            f"{audit['n_test'].mean():.0f} validation rows per split ({share:.0%}) are exact "
            "copies of training rows (spec 1.6: 21-22 of 56 in the original)."
        )
    cohorts = cohort_table[~cohort_table["protocol"].isin(STUDY_PROTOCOLS)]
    if len(cohorts):
        lines += ["", "Per-cohort AUROC (mean over trials):", ""]
        grid = cohorts.assign(short=cohorts["cohort"].str.rsplit("_", n=1).str[-1]).pivot(
            index="protocol", columns="short", values="auroc_mean"
        )
        lines.append("| protocol | " + " | ".join(grid.columns) + " |")
        lines.append("|---|" + "---|" * len(grid.columns))
        for protocol, values in grid.iterrows():
            lines.append(
                f"| {protocol} | "
                + " | ".join("-" if pd.isna(v) else f"{v:.2f}" for v in values)
                + " |"
            )
    return "\n".join(lines) + "\n"
