"""Nodes of the amu pipeline: thin wrappers around ``icb_kedro.models.amu``.

Paddle is imported only inside ``icb_kedro.models.amu.{model,train,cnn,pyfunc}``; the
nodes that need it import those modules lazily, so building the pipeline (kedro viz,
``kedro registry list``) never loads Paddle.

Feature choice for the cohorts (``amu.cohorts.expression``): by default
``harmonized_expression`` (log2(TPM+1)) restricted to the panel, turned back into TPM,
rescaled to constituent ratios over the panel genes and logged, i.e. AMU's own encoding
(spec 1.2, with spec 3.3's fix). It is computed per sample, so it needs no fitting and
carries no cross-sample (transductive) step; per-gene standardisation is then fitted on
each fold's training rows. ``expression_standardized`` (per-cohort z-scores over all of a
cohort's samples, label-free but transductive) is the configurable alternative.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import iter_amu_holdout_folds, iter_protocol_folds
from icb_kedro.evaluation.summary import (
    cohort_summary,
    fold_metrics,
    overall_summary,
    validate_predictions,
)
from icb_kedro.schema import COHORT, LABEL, PREDICTION_COLUMNS, SAMPLE_KEY, gene_columns

logger = logging.getLogger(__name__)

HONEST_PROTOCOL = "amu_holdout"
LEAKY_PROTOCOL = "amu_holdout_leaky"
STUDY_PROTOCOLS: tuple[str, ...] = (HONEST_PROTOCOL, LEAKY_PROTOCOL)
STUDY_COHORT = "AMU"
# amu.cohorts.expression -> (input scale of models.amu.features)
EXPRESSION_SCALES = {"harmonized_expression": "log2_tpm1", "expression_standardized": "zscore"}
PUBLISHED_AUROC = 0.941  # AMU paper, Table 2, validation on the oversampled 280 rows (spec 1.8)
AUDIT_COLUMNS = (
    "trial",
    "seed",
    "n_train",
    "n_test",
    "n_test_responders",
    "n_test_copies_of_train",
)


# ----------------------------------------------------------------------------- helpers


def _train_settings(params: dict[str, Any], setting: str) -> dict[str, Any]:
    """``amu.train`` updated with the setting's overrides (``amu.<setting>.train``)."""
    return {**params.get("train", {}), **(params.get(setting, {}).get("train") or {})}


def _n_trials(value: Any) -> int | None:
    return None if value in (None, "null", "all") else int(value)


def _labels(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index(SAMPLE_KEY)[LABEL]


def _panel_genes(gene_panels: pd.DataFrame, panel: str) -> list[str]:
    genes = gene_panels.loc[gene_panels["panel"] == panel, "gene"].tolist()
    if not genes:
        raise ValueError(
            f"gene panel {panel!r} is empty or unknown; panels: "
            f"{sorted(gene_panels['panel'].unique())}"
        )
    return genes


def amu_cohorts_left_out(table: pd.DataFrame, genes: list[str]) -> dict[str, list[str]]:
    """Cohorts that lack some of AMU's panel genes, with the genes they lack.

    AMU's missing-gene policy (deliberate): such a cohort is left out of AMU's cross-cohort
    protocols (as training rows and as a held-out cohort), with the reason logged. Its
    encoding is a constituent ratio over the panel: over a different gene set the ratios
    mean something else, and imputing half the panel (Mariathasan2018 has 78 of the 159)
    would make most of its input up.
    """
    from icb_kedro.panels import missing_by_cohort

    return {c: missing for c, missing in missing_by_cohort(table, genes, COHORT).items() if missing}


def _cohort_features(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    cohorts: dict[str, Any],
) -> tuple[pd.DataFrame, pd.Series, list[str], str]:
    """(features indexed by sample_key, labels, genes, input scale) for the cohorts that
    measure every panel gene (the others: ``amu_cohorts_left_out``)."""
    from icb_kedro.models.amu.features import amu_features

    source = cohorts.get("expression", "harmonized_expression")
    if source not in EXPRESSION_SCALES:
        raise ValueError(
            f"amu.cohorts.expression must be one of {sorted(EXPRESSION_SCALES)}, got {source!r}"
        )
    table = harmonized_expression if source == "harmonized_expression" else expression_standardized
    genes = _panel_genes(gene_panels, cohorts.get("panel", "amu160"))
    left_out = amu_cohorts_left_out(table, genes)
    for cohort, missing in left_out.items():
        logger.warning(
            "AMU leaves out cohort %s: it lacks %d of the %d panel genes (e.g. %s); "
            "AMU's ratio encoding needs all of them",
            cohort,
            len(missing),
            len(genes),
            ", ".join(missing[:5]),
        )
    table = table[~table[COHORT].isin(list(left_out))]
    scale = EXPRESSION_SCALES[source]
    values = amu_features(table, genes, scale, float(cohorts.get("pseudo_count", 1e-6)))
    features = pd.DataFrame(values, index=table[SAMPLE_KEY].to_numpy(), columns=genes)
    return features, _labels(table), genes, scale


def _model_config(params: dict[str, Any], n_genes: int) -> dict[str, Any]:
    return {**(params.get("model") or {}), "n_genes": n_genes}


# ----------------------------------------------------------------------------- study setting


def leakage_audit(
    amu_matrix: pd.DataFrame, amu_holdout_folds: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """How many validation rows of the paper's protocol are copies of training rows, per trial."""
    from icb_kedro.models.amu.runner import copies_in_test, leaky_oversampled_split, original_key

    labels = _labels(amu_matrix)
    rows = []
    for fold in iter_amu_holdout_folds(
        amu_holdout_folds, _n_trials(params["study"].get("n_trials"))
    ):
        train, test = leaky_oversampled_split(
            labels, fold.seed, float(params["study"].get("test_size", 0.2))
        )
        n_pos = sum(int(labels[original_key(k)]) for k in test)
        rows.append(
            (fold.trial, fold.seed, len(train), len(test), n_pos, copies_in_test(train, test))
        )
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def run_study_protocols(
    amu_matrix: pd.DataFrame, amu_holdout_folds: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The AMU study setting on the 207-patient matrix: predictions and fitted weights.

    ``amu_holdout`` (honest): the stored patient-level stratified 80/20 splits, SMOTE inside
    the training rows. ``amu_holdout_leaky`` (the paper's protocol, run only when listed
    in ``amu.study.protocols``): responders duplicated before a random 80/20 split with the
    same seeds, no SMOTE; it exists to measure how much leakage inflates the AUROC.
    """
    from icb_kedro.models.amu.features import SCALE_RATIO, amu_features
    from icb_kedro.models.amu.runner import (
        fold_data,
        leaky_oversampled_split,
        original_key,
        run_folds,
    )

    study = params["study"]
    protocols = list(study.get("protocols", [HONEST_PROTOCOL]))
    unknown = sorted(set(protocols) - set(STUDY_PROTOCOLS))
    if unknown:
        raise ValueError(
            f"amu.study.protocols: unknown {unknown}; expected some of {STUDY_PROTOCOLS}"
        )
    genes = gene_columns(amu_matrix)
    values = amu_features(amu_matrix, genes, SCALE_RATIO, float(study.get("pseudo_count", 1e-6)))
    features = pd.DataFrame(values, index=amu_matrix[SAMPLE_KEY].to_numpy(), columns=genes)
    labels = _labels(amu_matrix)
    folds = []
    for fold in iter_amu_holdout_folds(amu_holdout_folds, _n_trials(study.get("n_trials"))):
        if HONEST_PROTOCOL in protocols:
            folds.append(
                fold_data(
                    HONEST_PROTOCOL,
                    STUDY_COHORT,
                    fold.trial,
                    fold.seed,
                    features,
                    labels,
                    fold.train_keys,
                    fold.test_keys,
                )
            )
        if LEAKY_PROTOCOL in protocols:
            train, test = leaky_oversampled_split(
                labels, fold.seed, float(study.get("test_size", 0.2))
            )
            # A copy row has its original's features and label under its own key.
            copies = [k for k in train + test if k != original_key(k)]
            leaky_features = pd.concat(
                [features, features.loc[[original_key(k) for k in copies]].set_axis(copies)]
            )
            leaky_labels = pd.concat(
                [labels, labels.loc[[original_key(k) for k in copies]].set_axis(copies)]
            )
            folds.append(
                fold_data(
                    LEAKY_PROTOCOL,
                    STUDY_COHORT,
                    fold.trial,
                    fold.seed,
                    leaky_features,
                    leaky_labels,
                    train,
                    test,
                    smote=False,
                )
            )
    return run_folds(
        folds,
        genes,
        _model_config(params, len(genes)),
        _train_settings(params, "study"),
        params.get("threshold_method", "youden"),
        int(params.get("n_jobs", 1)),
    )


# ----------------------------------------------------------------------------- the cohorts


def run_cohort_protocols(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    params: dict[str, Any],
    held_out: str,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """transfer / loco / within folds of one held-out cohort: predictions and fitted weights."""
    from icb_kedro.models.amu.runner import fold_data, run_folds

    cohorts = params["cohorts"]
    folds_of_cohort = lodocv_folds[lodocv_folds["held_out"] == held_out]
    if folds_of_cohort.empty:
        raise ValueError(f"lodocv_folds has no folds for held-out cohort {held_out!r}")
    features, labels, genes, _ = _cohort_features(
        harmonized_expression, expression_standardized, gene_panels, cohorts
    )
    if not features.index.isin(
        folds_of_cohort.loc[folds_of_cohort["cohort"] == held_out, SAMPLE_KEY]
    ).any():
        logger.warning(
            "AMU: held-out cohort %s is left out (missing panel genes): no %s folds",
            held_out,
            held_out,
        )
    specs = iter_protocol_folds(
        folds_of_cohort, list(cohorts.get("protocols", [])), cohorts.get("n_repeats")
    )
    kept = set(features.index)
    folds = [
        fold_data(
            f.protocol,
            f.held_out,
            f.trial,
            f.seed,
            features,
            labels,
            [k for k in f.train_keys if k in kept],
            [k for k in f.test_keys if k in kept],
            repeat=f.repeat,
        )
        for f in specs
        if any(k in kept for k in f.test_keys)
    ]
    return run_folds(
        folds,
        genes,
        _model_config(params, len(genes)),
        _train_settings(params, "cohorts"),
        params.get("threshold_method", "youden"),
        int(params.get("n_jobs", 1)),
    )


# ----------------------------------------------------------------------------- results


def combine_predictions(*tables: pd.DataFrame) -> pd.DataFrame:
    """``predictions_amu``: the study and per-cohort predictions in one validated table."""
    frames = [t for t in tables if len(t)]
    if not frames:
        raise ValueError("amu produced no predictions: every protocol list is empty")
    combined = validate_predictions(pd.concat(frames, ignore_index=True)[list(PREDICTION_COLUMNS)])
    return combined.sort_values(
        ["protocol", "cohort", "repeat", "trial", SAMPLE_KEY], kind="stable"
    ).reset_index(drop=True)


LEARNING_COLUMNS = (
    "protocol", "cohort", "repeat", "trial", "n_train", "n_synthetic", "epochs", "final_loss",
    "train_auroc", "test_auroc", "fit_seconds",
)  # fmt: skip


def learning_check(predictions: pd.DataFrame, *weights: dict[str, Any]) -> pd.DataFrame:
    """``amu_learning_check``: per fold, the fit on its own training rows beside the held-out AUROC.

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


def compute_fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """``fold_metrics_amu`` (one MLflow child run per row through the project hook)."""
    return fold_metrics(predictions)


def summarize(
    predictions: pd.DataFrame, params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-cohort and overall summaries (evaluation layer: means over trials,
    patient bootstrap CIs)."""
    summary = params.get("summary", {})
    n_boot, seed = int(summary.get("n_boot", 1000)), int(summary.get("seed", 0))
    return cohort_summary(predictions, n_boot=n_boot, seed=seed), overall_summary(
        predictions, n_boot=n_boot, seed=seed
    )


def plot_roc_pr(predictions: pd.DataFrame, fold_metrics_amu: pd.DataFrame):
    from icb_kedro.models.amu.plots import plot_roc_pr as plot

    return plot(predictions, fold_metrics_amu)


def plot_confusion(predictions: pd.DataFrame):
    from icb_kedro.models.amu.plots import plot_confusion_matrices

    return plot_confusion_matrices(predictions)


def write_report(
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


# ----------------------------------------------------------------------------- final model


def train_final_model(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    params: dict[str, Any],
) -> dict[str, Any]:
    """The deployable AMU: every labelled sample of the cohorts, cohort settings (one fit,
    so it gets every worker's threads: the fused engine's numbers do not depend on them).

    No model is chosen by test scores: its expected performance is what the loco/transfer
    protocols measured with the same settings.
    """
    from icb_kedro.models.amu.train import TrainConfig, fit_network, lone_fit_threads

    cohorts = params["cohorts"]
    features, labels, genes, scale = _cohort_features(
        harmonized_expression, expression_standardized, gene_panels, cohorts
    )
    labelled = labels[labels.notna()].astype(int)
    settings = lone_fit_threads(
        _train_settings(params, "cohorts"), params.get("n_jobs", 1), n_fits=1
    )
    config = TrainConfig.from_dict(
        {**settings, "seed": int(params.get("final_model", {}).get("seed", 0))}
    )
    fitted = fit_network(
        features.loc[labelled.index].to_numpy(),
        labelled.to_numpy(),
        model_config=_model_config(params, len(genes)),
        train_config=config,
        features=genes,
    )
    cohorts_seen = sorted(
        harmonized_expression.loc[harmonized_expression[LABEL].notna(), COHORT].unique()
    )
    logger.info(
        "amu final model: %d samples of %d cohorts, %d genes, %.0f s",
        fitted.n_train,
        len(cohorts_seen),
        len(genes),
        fitted.fit_seconds,
    )
    return {
        **asdict(fitted),
        "input_scale": scale,
        "pseudo_count": float(cohorts.get("pseudo_count", 1e-6)),
        "cohorts": cohorts_seen,
    }


def _as_fitted(final_model: dict[str, Any]):
    from icb_kedro.models.amu.train import FittedNetwork

    fields = set(FittedNetwork.__dataclass_fields__)
    return FittedNetwork(**{k: v for k, v in final_model.items() if k in fields})


def export_gene_embeddings(final_model: dict[str, Any]) -> pd.DataFrame:
    """``amu_gene_embeddings``: one row per gene, columns ``gene, dim_0 .. dim_<D-1>``."""
    table = np.asarray(final_model["state"]["gene_embedding.weight"], dtype=np.float64)
    if table.shape[0] != len(final_model["features"]):
        raise ValueError(
            f"embedding table has {table.shape[0]} rows for {len(final_model['features'])} genes"
        )
    frame = pd.DataFrame(table, columns=[f"dim_{i}" for i in range(table.shape[1])])
    frame.insert(0, "gene", final_model["features"])
    return frame


def build_pyfunc_model(final_model: dict[str, Any]):
    """The MLflow pyfunc (registered as ``icb_amu`` by the catalog's MlflowModelTrackingDataset)."""
    from icb_kedro.models.amu.pyfunc import AmuPyfuncModel

    return AmuPyfuncModel(
        _as_fitted(final_model), final_model["input_scale"], final_model["pseudo_count"]
    )
