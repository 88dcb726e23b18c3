"""Report sections on whether the models learn: IC2Bert's pretraining (masked-token
accuracy by n_bins) and fine-tuning learning check with its sample-size curves, and AMU's
training fit beside its held-out AUROC."""

from __future__ import annotations

import pandas as pd

from icb_kedro.reporting.report import NotRun, Section, Table, Text
from icb_kedro.reporting.study_inputs import StudyInputs, present, safe_figure
from icb_kedro.reporting.study_plots import plot_mlm_accuracy, plot_sample_size

ABLATIONS = ("ic2bert_random_init", "ic2bert_token_lr")


def _paired_difference(comparisons: pd.DataFrame | None, protocol: str, ablation: str):
    """IC2Bert - ablation, combined across cohorts (``evaluation.comparisons``: random
    effects over the paired per-cohort differences, BH q), or None where not compared."""
    from icb_kedro.evaluation.comparisons import ALL_COHORTS

    if comparisons is None or comparisons.empty:
        return None
    rows = comparisons[
        (comparisons["protocol"] == protocol) & (comparisons["cohort"] == ALL_COHORTS)
    ]
    for a, b, sign in (("ic2bert", ablation, 1.0), (ablation, "ic2bert", -1.0)):
        row = rows[(rows["model_a"] == a) & (rows["model_b"] == b)]
        if len(row):
            r = row.iloc[0]
            low, high = sorted((sign * r["ci_low"], sign * r["ci_high"]))
            return sign * float(r["diff"]), low, high, float(r["q"]), bool(r["significant"])
    return None


def _paired_tests(
    summary: pd.DataFrame, comparisons: pd.DataFrame | None, protocol: str
) -> dict[str, tuple] | None:
    """The paired test of IC2Bert against each ablation in ``summary`` for ``protocol``, or
    None unless every one of them was compared (then the verdict falls back on the means)."""
    present_models = set(summary.loc[summary["protocol"] == protocol, "model"])
    paired = {
        m: _paired_difference(comparisons, protocol, m) for m in ABLATIONS if m in present_models
    }
    return paired if paired and all(p is not None for p in paired.values()) else None


def pretraining_verdict(
    summary: pd.DataFrame, comparisons: pd.DataFrame | None = None, margin: float = 0.02
) -> list[str]:
    """One plain sentence per protocol: did pretraining help (IC2Bert vs its random-init and
    token-LR ablations on the same folds)?

    With the paired comparisons (``comparisons``), the verdict is the test's: *helped* when
    IC2Bert is significantly above every ablation (BH q < 0.05, random effects across
    cohorts), *hurt* when significantly below one, otherwise *did not help measurably*: a
    gap of a few hundredths between means of 13 small cohorts is within their noise
    (signatures_and_statistics.md). Without them, means compared with ``margin``.
    """
    lines = []
    table = summary.set_index(["protocol", "model"])["test_auroc"]
    for protocol in sorted(summary["protocol"].unique()):
        if (protocol, "ic2bert") not in table.index:
            continue
        ours = float(table[(protocol, "ic2bert")])
        others = {m: float(table[(protocol, m)]) for m in ABLATIONS if (protocol, m) in table.index}
        if not others:
            continue
        compared = ", ".join(f"{m} {v:.3f}" for m, v in others.items())
        paired = _paired_tests(summary, comparisons, protocol)
        if paired is not None:
            if all(p[4] and p[0] > 0 for p in paired.values()):
                verdict = "helped"
            elif any(p[4] and p[0] < 0 for p in paired.values()):
                verdict = "hurt"
            else:
                verdict = "did not help measurably"
            tests = "; ".join(
                f"vs {m} {d:+.3f} [{lo:.3f}, {hi:.3f}], q {q:.2f}"
                for m, (d, lo, hi, q, _) in paired.items()
            )
            lines.append(
                f"{protocol}: pretrained IC2Bert {ours:.3f} vs {compared}: pretraining "
                f"{verdict} (paired IC2Bert - ablation, random effects: {tests})."
            )
            continue
        best = max(others.values())
        verdict = (
            "helped"
            if ours > best + margin
            else "did not help measurably"
            if ours >= best - margin
            else "hurt"
        )
        lines.append(
            f"{protocol}: pretrained IC2Bert {ours:.3f} vs {compared}: pretraining {verdict} "
            f"(means compared, margin {margin:.2f} AUROC; no paired comparison found)."
        )
    return lines


def section_ic2bert_training(inputs: StudyInputs) -> Section:
    section = Section("IC2Bert: does it learn, and does pretraining help?")
    if present(inputs.learning_summary):
        summary = inputs.learning_summary
        verdict = pretraining_verdict(summary, inputs.comparisons)
        protocols = summary.loc[summary["model"] == "ic2bert", "protocol"].unique()
        if any(_paired_tests(summary, inputs.comparisons, p) is not None for p in protocols):
            verdict.append(
                "Paired differences combine the per-cohort differences by random effects, "
                "weighted by each cohort's precision, so their sign can differ from the means'."
            )
        section.add(
            Text(
                " ".join(verdict)
                or "No ablation ran, so the benefit of pretraining is not measured."
            )
        )
        section.add(
            Table(
                summary,
                "Learning check (mean over held-out cohorts): training fit, inner-CV AUROC, "
                "held-out AUROC and spread of held-out probabilities, for IC2Bert and its "
                "ablations on the same folds",
                max_rows=40,
            )
        )
    else:
        section.add(NotRun("Learning check", "no IC2Bert learning-check table was found"))
    if present(inputs.pretrain_history):
        section.add(
            safe_figure(
                "ic2bert_mlm_accuracy",
                lambda: plot_mlm_accuracy(inputs.pretrain_history),
                "Masked-token accuracy on the held-out MLM validation rows by number of "
                "expression bins.",
            )
        )
    else:
        section.add(NotRun("MLM accuracy vs n_bins", "no IC2Bert pretraining history was found"))
    if present(inputs.sample_size):
        section.add(
            safe_figure(
                "ic2bert_sample_size",
                lambda: plot_sample_size(inputs.sample_size),
                "Test AUROC by number of labelled training samples of the held-out cohort "
                "(mean and spread over draws).",
            )
        )
    else:
        section.add(NotRun("Sample-size curves", "no sample-size analysis output was found"))
    return section


def amu_learning_table(
    learning: pd.DataFrame, overall: pd.DataFrame | None, fits_below: float = 0.7
) -> tuple[pd.DataFrame, list[str]]:
    """Per protocol: AMU's training fit and held-out AUROC beside L2-LR's on the same folds,
    and one plain sentence each on whether AMU fitted its training rows at all."""
    table = (
        learning.groupby("protocol")
        .agg(
            fits=("train_auroc", "size"),
            epochs=("epochs", "max"),
            train_auroc=("train_auroc", "mean"),
            train_auroc_min=("train_auroc", "min"),
            test_auroc=("test_auroc", "mean"),
            final_loss=("final_loss", "mean"),
        )
        .reset_index()
    )
    logreg = {}
    if present(overall):
        rows = overall[overall["model"] == "logreg"]
        logreg = dict(zip(rows["protocol"], rows["auroc_mean"]))
    table["logreg_test_auroc"] = table["protocol"].map(logreg)
    lines = []
    for row in table.itertuples():
        verdict = (
            "does not fit its training rows"
            if row.train_auroc < fits_below
            else "fits its training rows"
        )
        lines.append(
            f"{row.protocol}: AMU {verdict} (mean training AUROC {row.train_auroc:.3f} after "
            f"{row.epochs} epochs, final training loss {row.final_loss:.2f}); held-out AUROC "
            f"{row.test_auroc:.3f}."
        )
    return table.round(3), lines


def section_amu_training(inputs: StudyInputs) -> Section:
    section = Section("AMU: does it learn?")
    if not present(inputs.amu_learning):
        section.add(NotRun("Learning check", "no AMU learning-check table was found"))
        return section
    table, lines = amu_learning_table(inputs.amu_learning, inputs.overall)
    section.add(
        Text(
            "\n".join(f"- {line}" for line in lines)
            + "\n\nA model that does not fit its training rows says nothing about transfer or "
            "leakage: read its held-out AUROC as an untrained model's."
        )
    )
    section.add(
        Table(
            table,
            "AMU learning check (amu_learning_check, one row per fit, averaged per protocol): "
            "training AUROC on the real training rows, held-out AUROC (mean over splits/cohorts), "
            "and L2 logistic regression's held-out AUROC on the protocol (mean over all of its "
            "splits, which may be more than AMU's)",
            max_rows=20,
        )
    )
    return section
