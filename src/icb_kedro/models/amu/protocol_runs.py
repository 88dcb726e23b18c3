"""AMU's evaluation protocols: the study setting, its leakage audit and one held-out cohort.

- :func:`run_study_setting`: the 207-patient AMU matrix with the stored patient-level
  holdout splits (``amu_holdout``, honest) and, when asked for, the paper's leaky protocol
  (``amu_holdout_leaky``: responders duplicated before a random 80/20 split);
- :func:`audit_leaky_splits`: how many validation rows of the leaky protocol are copies of
  training rows, per trial;
- :func:`run_held_out_cohort`: the transfer / loco / within folds of one held-out cohort.

Each builds the folds (:class:`~icb_kedro.models.amu.runner.FoldData`) and fits them with
:func:`~icb_kedro.models.amu.runner.run_folds`; Paddle loads only inside that call's
workers, so importing this module loads nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from icb_kedro.evaluation.protocols import iter_amu_holdout_folds, iter_protocol_folds
from icb_kedro.schema import SAMPLE_KEY, gene_columns

from .inputs import cohort_features, network_config, sample_labels
from .train_config import TrainConfig  # plain data, no Paddle

logger = logging.getLogger(__name__)

HONEST_PROTOCOL = "amu_holdout"
LEAKY_PROTOCOL = "amu_holdout_leaky"
STUDY_PROTOCOLS: tuple[str, ...] = (HONEST_PROTOCOL, LEAKY_PROTOCOL)
STUDY_COHORT = "AMU"
AUDIT_COLUMNS = (
    "trial",
    "seed",
    "n_train",
    "n_test",
    "n_test_responders",
    "n_test_copies_of_train",
)


# ----------------------------------------------------------------------------- study setting


def audit_leaky_splits(
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    n_trials: int | None,
    test_size: float,
) -> pd.DataFrame:
    """How many validation rows of the paper's protocol are copies of training rows, per trial."""
    from icb_kedro.models.amu.runner import copies_in_test, leaky_oversampled_split, original_key

    labels = sample_labels(amu_matrix)
    rows = []
    for fold in iter_amu_holdout_folds(amu_holdout_folds, n_trials):
        train, test = leaky_oversampled_split(labels, fold.seed, test_size)
        n_pos = sum(int(labels[original_key(k)]) for k in test)
        rows.append(
            (fold.trial, fold.seed, len(train), len(test), n_pos, copies_in_test(train, test))
        )
    return pd.DataFrame(rows, columns=list(AUDIT_COLUMNS))


def run_study_setting(
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    *,
    protocols: Sequence[str],
    n_trials: int | None,
    test_size: float,
    pseudo_count: float,
    model: Mapping[str, Any] | None,
    train_config: TrainConfig,
    threshold_method: str,
    n_jobs: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The AMU study setting on the 207-patient matrix: predictions and fitted weights.

    ``amu_holdout`` (honest): the stored patient-level stratified 80/20 splits, SMOTE inside
    the training rows. ``amu_holdout_leaky`` (the paper's protocol, run only when listed
    in ``amu.study.protocols``): responders duplicated before a random 80/20 split with the
    same seeds, no SMOTE; it exists to measure how much leakage inflates the AUROC.
    ``model``: the network settings (``amu.model``; ``n_genes`` comes from the matrix);
    ``train_config``: the recipe, each fold fitted with its own seed.
    """
    from icb_kedro.models.amu.features import SCALE_RATIO, amu_features
    from icb_kedro.models.amu.runner import (
        fold_data,
        leaky_oversampled_split,
        original_key,
        run_folds,
    )

    protocols = list(protocols)
    unknown = sorted(set(protocols) - set(STUDY_PROTOCOLS))
    if unknown:
        raise ValueError(
            f"amu.study.protocols: unknown {unknown}; expected some of {STUDY_PROTOCOLS}"
        )
    genes = gene_columns(amu_matrix)
    values = amu_features(amu_matrix, genes, SCALE_RATIO, pseudo_count)
    features = pd.DataFrame(values, index=amu_matrix[SAMPLE_KEY].to_numpy(), columns=genes)
    labels = sample_labels(amu_matrix)
    folds = []
    for fold in iter_amu_holdout_folds(amu_holdout_folds, n_trials):
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
            train, test = leaky_oversampled_split(labels, fold.seed, test_size)
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
        network_config(model, len(genes)),
        train_config,
        threshold_method,
        n_jobs,
    )


# ----------------------------------------------------------------------------- the cohorts


def run_held_out_cohort(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    held_out: str,
    *,
    source: str,
    panel: str,
    pseudo_count: float,
    protocols: Sequence[str],
    n_repeats: int | None | Mapping[str, int | None],
    model: Mapping[str, Any] | None,
    train_config: TrainConfig,
    threshold_method: str,
    n_jobs: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """transfer / loco / within folds of one held-out cohort: predictions and fitted weights.

    Features from :func:`~icb_kedro.models.amu.inputs.cohort_features` (``source``,
    ``panel``, ``pseudo_count``); ``protocols`` and ``n_repeats`` select the folds of
    ``lodocv_folds`` (``iter_protocol_folds``)."""
    from icb_kedro.models.amu.runner import fold_data, run_folds

    folds_of_cohort = lodocv_folds[lodocv_folds["held_out"] == held_out]
    if folds_of_cohort.empty:
        raise ValueError(f"lodocv_folds has no folds for held-out cohort {held_out!r}")
    features, labels, genes, _ = cohort_features(
        harmonized_expression, expression_standardized, gene_panels, source, panel, pseudo_count
    )
    if not features.index.isin(
        folds_of_cohort.loc[folds_of_cohort["cohort"] == held_out, SAMPLE_KEY]
    ).any():
        logger.warning(
            "AMU: held-out cohort %s is left out (missing panel genes): no %s folds",
            held_out,
            held_out,
        )
    specs = iter_protocol_folds(folds_of_cohort, list(protocols), n_repeats)
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
        network_config(model, len(genes)),
        train_config,
        threshold_method,
        n_jobs,
    )
