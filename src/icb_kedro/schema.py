"""Column names and roles shared by every pipeline: the data contracts in one place.

Tables exchanged through the catalog (all parquet):

``harmonized_expression`` (wide, one row per sample)
    ``cohort`` str, ``sample_id`` str, ``sample_key`` str (``"<cohort>:<sample_id>"``,
    unique: sample ids repeat across cohorts, e.g. ``Pt1`` in Riaz and Hugo), ``label``
    nullable Int8 (1 responder, 0 non-responder, <NA> unlabelled), then one float64
    column per gene (log2(TPM+1)). Gene columns are every column not in ``META_COLUMNS``.

``lodocv_folds`` (long, one row per held-out cohort x trial x sample)
    ``held_out`` str, ``trial`` int, ``seed`` int, ``cohort`` str, ``sample_key`` str,
    ``role`` one of ``ROLES``. Protocols (transfer / loco / within) are views of it,
    see ``icb_kedro.evaluation.protocols``.

``predictions`` (long, one row per scored sample)
    ``model, protocol, cohort, trial, sample_key, y_true, y_prob, n_train, threshold``
    where ``cohort`` is the held-out (scored) cohort, ``y_prob`` is P(responder),
    ``n_train`` the number of labelled training rows of that fold and ``threshold`` the
    decision threshold fitted on training rows (0.5 when a model fits none).

``fold_metrics`` (the tidy results table, one row per scored fold)
    ``model, protocol, cohort, trial, n_train, n_test, n_test_pos`` + ``METRICS``.
"""

from __future__ import annotations

COHORT = "cohort"
SAMPLE_ID = "sample_id"
SAMPLE_KEY = "sample_key"
LABEL = "label"
META_COLUMNS: tuple[str, ...] = (COHORT, SAMPLE_ID, SAMPLE_KEY, LABEL)

# Fold roles. For held-out cohort h and trial t:
ROLE_TARGET_TRAIN = "target_train"  # h's labelled samples in the 80% split
ROLE_TARGET_TEST = "target_test"  # h's labelled samples in the 20% split
ROLE_TARGET_UNLABELLED = "target_unlabelled"  # h's unlabelled samples (never used by default)
ROLE_SOURCE = "source"  # labelled samples of every other cohort
ROLE_SOURCE_UNLABELLED = "source_unlabelled"  # unlabelled samples of every other cohort
ROLES: tuple[str, ...] = (
    ROLE_TARGET_TRAIN,
    ROLE_TARGET_TEST,
    ROLE_TARGET_UNLABELLED,
    ROLE_SOURCE,
    ROLE_SOURCE_UNLABELLED,
)
# The self-supervised pretraining pool of h: every sample of the other cohorts.
PRETRAIN_ROLES: tuple[str, ...] = (ROLE_SOURCE, ROLE_SOURCE_UNLABELLED)

FOLD_COLUMNS: tuple[str, ...] = ("held_out", "trial", "seed", COHORT, SAMPLE_KEY, "role")

PREDICTION_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "cohort",
    "trial",
    SAMPLE_KEY,
    "y_true",
    "y_prob",
    "n_train",
    "threshold",
)
METRICS: tuple[str, ...] = (
    "auroc",
    "auprc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "brier",
)
FOLD_METRIC_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "cohort",
    "trial",
    "n_train",
    "n_test",
    "n_test_pos",
    *METRICS,
)

PROTOCOLS: tuple[str, ...] = ("transfer", "loco", "within", "amu_holdout", "amu_holdout_leaky")


# Gene panels (table ``gene_panels``: columns ``panel, gene``; genes present in every cohort).
PANEL_COMMON = "common"  # intersection of all selected cohorts (1,719 genes for the seven)
PANEL_IC2BERT = "ic2bert_prior"  # the IC2Bert 983-gene prior restricted to the common panel
PANEL_AMU = "amu160"  # the AMU 160 genes restricted to the common panel


def gene_columns(frame) -> list[str]:
    """Gene columns of a wide expression table (every column that is not metadata)."""
    return [c for c in frame.columns if c not in META_COLUMNS]


def require_genes(columns, genes, model: str) -> None:
    """Refuse an input that lacks any of a model's genes, naming them (nothing is imputed)."""
    present = set(columns)
    missing = [g for g in genes if g not in present]
    if missing:
        shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise ValueError(
            f"input lacks {len(missing)} of the model's {len(genes)} genes ({shown}); {model} needs every "
            "panel gene as a column (HGNC symbol, log2(TPM+1)); it does not impute genes"
        )
