"""Column names and roles shared by every pipeline: the data contracts in one place.

Tables exchanged through the catalog (all parquet):

``harmonized_expression`` (wide, one row per sample)
    ``cohort`` str, ``sample_id`` str, ``sample_key`` str (``"<cohort>:<sample_id>"``,
    unique: sample ids repeat across cohorts, e.g. ``Pt1`` in Riaz and Hugo), ``label``
    nullable Int8 (1 responder, 0 non-responder, <NA> unlabelled), then one float64
    column per gene (log2(TPM+1)). Gene columns are every column not in ``META_COLUMNS``.

``lodocv_folds`` (long, one row per held-out cohort x trial x sample)
    ``held_out`` str, ``scheme`` (``SCHEME_KFOLD`` | ``SCHEME_HOLDOUT``), ``repeat`` int,
    ``trial`` int, ``seed`` int, ``cohort`` str, ``sample_key`` str, ``role`` one of ``ROLES``.
    A *trial* is one train/test split of the held-out cohort's labelled patients (one model
    fit); a *repeat* is the set of trials that together score every labelled patient once:
    the K trials of one repeated stratified K-fold round (``kfold``), or one 80/20 split on
    its own (``holdout``, the IC2Bert paper's protocol; trial ids from ``PAPER_TRIAL_OFFSET``).
    Protocols (transfer / loco / within / transfer_paper) are views of it, see
    ``icb_kedro.evaluation.protocols``.

``predictions`` (long, one row per scored sample and repeat)
    ``model, protocol, cohort, repeat, trial, sample_key, y_true, y_prob, n_train, threshold``
    where ``cohort`` is the held-out (scored) cohort, ``trial`` the split whose model scored
    the row, ``y_prob`` is P(responder), ``n_train`` the number of labelled training rows of
    that split and ``threshold`` the decision threshold fitted on its training rows (0.5
    when a model fits none). A patient appears at most once per (model, protocol, repeat).

``fold_metrics`` (the tidy results table, one row per scored repeat)
    ``model, protocol, cohort, repeat, n_train, n_test, n_test_pos`` + ``METRICS``: metrics
    of the repeat's pooled out-of-fold predictions (each row judged by its own split's
    threshold); ``n_train`` = mean training rows over its splits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COHORT = "cohort"
SAMPLE_ID = "sample_id"
SAMPLE_KEY = "sample_key"
LABEL = "label"
META_COLUMNS: tuple[str, ...] = (COHORT, SAMPLE_ID, SAMPLE_KEY, LABEL)

# Fold roles. For held-out cohort h and trial t:
ROLE_TARGET_TRAIN = "target_train"  # h's labelled samples outside the trial's test split
ROLE_TARGET_TEST = "target_test"  # h's labelled samples in the trial's test split (1/K, or 20%)
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

# How a held-out cohort's labelled patients are split (column ``scheme`` of lodocv_folds).
SCHEME_KFOLD = "kfold"  # repeated stratified K-fold: every patient tested once per repeat
SCHEME_HOLDOUT = "holdout"  # the IC2Bert paper's stratified 80/20 splits (protocol transfer_paper)
SCHEMES: tuple[str, ...] = (SCHEME_KFOLD, SCHEME_HOLDOUT)
# Trial ids of the holdout splits start here, so a trial id names one split of one held-out
# cohort whatever K and the number of repeats are (K-fold trials: repeat * K + fold).
PAPER_TRIAL_OFFSET = 1000

FOLD_COLUMNS: tuple[str, ...] = (
    "held_out",
    "scheme",
    "repeat",
    "trial",
    "seed",
    COHORT,
    SAMPLE_KEY,
    "role",
)

PREDICTION_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "cohort",
    "repeat",
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
    "repeat",
    "n_train",
    "n_test",
    "n_test_pos",
    *METRICS,
)

PROTOCOLS: tuple[str, ...] = (
    "transfer",
    "loco",
    "within",
    "transfer_paper",
    "amu_holdout",
    "amu_holdout_leaky",
)


# Gene panels (table ``gene_panels``: columns ``panel, gene``; genes present in every cohort).
PANEL_COMMON = "common"  # intersection of all selected cohorts (1,719 genes for the 13)
PANEL_IC2BERT = "ic2bert_prior"  # the IC2Bert 983-gene prior (harmonization.panels)
PANEL_AMU = "amu160"  # the AMU 160 genes (harmonization.panels)

# Expression scales: log2(TPM + offset), and a sample's TPM values sum to 1e6, so on any
# subset of genes they sum to at most that (+ rounding of the values on file).
TPM_TOTAL = 1e6
TPM_TOTAL_TOLERANCE = 1e-3
SCALE_TOLERANCE = 1e-6  # on the bounds log2(offset) and log2(TPM_TOTAL + offset)


def tpm_totals_over_limit(log_values: np.ndarray, offset: float, axis: int):
    """(each sample's TPM sum, positions of the samples summing above ``TPM_TOTAL``) for
    values log2(TPM + ``offset``) with samples along the other axis than ``axis``: a scale
    check that holds on any gene subset (ingestion's reader, the registered models)."""
    with np.errstate(over="ignore"):
        totals = np.nansum(np.exp2(log_values) - offset, axis=axis)
    return totals, np.flatnonzero(totals > TPM_TOTAL * (1 + TPM_TOTAL_TOLERANCE))


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
            f"input lacks {len(missing)} of the model's {len(genes)} genes ({shown}); {model} "
            "needs every panel gene as a column (HGNC symbol, log2(TPM+1)); it does not "
            "impute genes"
        )


def prediction_frame(
    model: str, fold, y_true, y_prob, threshold: float, n_train: int | None = None, test_keys=None
) -> pd.DataFrame:
    """One fold's scored rows as a ``PREDICTION_COLUMNS`` table: the one constructor every model
    uses.

    ``fold`` is an ``evaluation.protocols.FoldSpec`` (or anything with ``protocol, held_out,
    repeat, trial, train_keys, test_keys``); ``n_train`` / ``test_keys`` override the fold's
    when a model scores fewer rows (e.g. AMU drops cohorts lacking its genes).
    """
    keys = list(fold.test_keys if test_keys is None else test_keys)
    table = pd.DataFrame(
        {
            "model": model,
            "protocol": fold.protocol,
            "cohort": fold.held_out,
            "repeat": int(fold.repeat),
            "trial": int(fold.trial),
            SAMPLE_KEY: keys,
            "y_true": np.asarray(y_true, dtype=np.int8),
            "y_prob": np.asarray(y_prob, dtype=np.float64),
            "n_train": int(len(fold.train_keys) if n_train is None else n_train),
            "threshold": float(threshold),
        }
    )
    return table[list(PREDICTION_COLUMNS)]


def empty_predictions() -> pd.DataFrame:
    """A typed ``PREDICTION_COLUMNS`` table with no rows."""
    dtypes = {
        "repeat": "int64",
        "trial": "int64",
        "y_true": "int8",
        "y_prob": "float64",
        "n_train": "int64",
        "threshold": "float64",
    }
    return pd.DataFrame({c: pd.Series(dtype=dtypes.get(c, "object")) for c in PREDICTION_COLUMNS})
