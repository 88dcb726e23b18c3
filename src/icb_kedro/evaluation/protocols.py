"""Evaluation protocols as views of the stored fold tables: who trains, who is scored.

Folds are made once by the ``folds`` pipeline; every model reads them through these
iterators, so every model is scored on exactly the same samples.

For held-out cohort h and trial t of ``lodocv_folds``:

- ``transfer`` (IC2Bert protocol): train = ``source`` + ``target_train``; test = ``target_test``.
- ``loco`` (strict leave-one-cohort-out, zero-shot): train = ``source``; test = every
  labelled sample of h (``target_train`` + ``target_test``). Both are the same in every
  trial, so it is emitted once per held-out cohort (the first trial, usually 0).
- ``within``: train = ``target_train``; test = ``target_test``.

``amu_holdout`` reads ``amu_holdout_folds`` (roles ``train``/``test``, held-out name "AMU").
Unlabelled samples (``*_unlabelled`` roles) never enter supervised train or test sets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

import pandas as pd

from icb_kedro.schema import (
    COHORT,
    FOLD_COLUMNS,
    PRETRAIN_ROLES,
    ROLE_SOURCE,
    ROLE_TARGET_TEST,
    ROLE_TARGET_TRAIN,
    ROLES,
    SAMPLE_KEY,
)

LODOCV_PROTOCOLS: tuple[str, ...] = ("transfer", "loco", "within")
AMU_PROTOCOL = "amu_holdout"
AMU_HELD_OUT = "AMU"
AMU_FOLD_COLUMNS: tuple[str, ...] = ("trial", "seed", SAMPLE_KEY, "role")
AMU_ROLES: tuple[str, ...] = ("train", "test")

# Roles that make up the train and test sets of each protocol.
_PROTOCOL_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "transfer": ((ROLE_SOURCE, ROLE_TARGET_TRAIN), (ROLE_TARGET_TEST,)),
    "loco": ((ROLE_SOURCE,), (ROLE_TARGET_TRAIN, ROLE_TARGET_TEST)),
    "within": ((ROLE_TARGET_TRAIN,), (ROLE_TARGET_TEST,)),
}


class FoldSpec(NamedTuple):
    """One scored fold: train on ``train_keys``, score ``test_keys`` (sample keys, sorted)."""

    protocol: str
    held_out: str
    trial: int
    seed: int
    train_keys: list[str]
    test_keys: list[str]


def _require_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(table.columns)}")


def _check_n_trials(n_trials: int | None) -> None:
    if n_trials is not None and int(n_trials) < 1:
        raise ValueError(f"n_trials must be None or >= 1, got {n_trials}")


def _validate_lodocv_folds(folds: pd.DataFrame) -> None:
    _require_columns(folds, FOLD_COLUMNS, "lodocv_folds")
    if folds[list(FOLD_COLUMNS)].isna().any().any():
        raise ValueError("lodocv_folds has missing values in " + str(folds.columns[folds.isna().any()].tolist()))
    unknown = sorted(set(folds["role"]) - set(ROLES))
    if unknown:
        raise ValueError(f"lodocv_folds has unknown roles {unknown}; expected {ROLES}")
    # Only h's own samples may carry target roles, and h's samples never carry source roles.
    is_target_role = folds["role"].str.startswith("target_")
    misplaced = folds[is_target_role != (folds[COHORT] == folds["held_out"])]
    if len(misplaced):
        row = misplaced.iloc[0]
        raise ValueError(
            f"lodocv_folds: sample {row[SAMPLE_KEY]!r} of cohort {row[COHORT]!r} has role {row['role']!r} "
            f"for held-out cohort {row['held_out']!r} ({len(misplaced)} such rows)"
        )
    duplicated = folds.duplicated(["held_out", "trial", SAMPLE_KEY])
    if duplicated.any():
        row = folds[duplicated].iloc[0]
        raise ValueError(
            f"lodocv_folds: sample {row[SAMPLE_KEY]!r} has several roles in held_out={row['held_out']!r} trial={row['trial']}"
        )


def _fold(protocol: str, held_out: str, trial: int, seed: int, roles: dict[str, list[str]]) -> FoldSpec:
    train_roles, test_roles = _PROTOCOL_ROLES[protocol]
    train = sorted(key for role in train_roles for key in roles.get(role, []))
    test = sorted(key for role in test_roles for key in roles.get(role, []))
    if not train or not test:
        raise ValueError(
            f"{protocol} fold of held-out cohort {held_out!r}, trial {trial} has "
            f"{len(train)} training and {len(test)} test samples; both must be non-empty"
        )
    overlap = set(train) & set(test)
    if overlap:  # impossible with a valid folds table; a cheap guard against leakage
        raise ValueError(f"{protocol} fold {held_out!r}/{trial}: test samples also in training: {sorted(overlap)[:5]}")
    return FoldSpec(protocol, held_out, int(trial), int(seed), train, test)


def iter_protocol_folds(
    folds: pd.DataFrame, protocols: Sequence[str], n_trials: int | None = None
) -> Iterator[FoldSpec]:
    """Folds of the LODOCV protocols, in order protocol -> held-out cohort (sorted) -> trial.

    ``n_trials`` keeps the first ``n_trials`` trials of each held-out cohort (all if None);
    ``loco`` yields one fold per held-out cohort whatever ``n_trials`` is.
    """
    if isinstance(protocols, str):
        protocols = [protocols]
    unknown = [p for p in protocols if p not in LODOCV_PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown LODOCV protocols {unknown}; expected some of {LODOCV_PROTOCOLS}")
    _check_n_trials(n_trials)
    _validate_lodocv_folds(folds)

    # Group once: (held_out, trial) -> (seed, {role: keys}).
    by_fold: dict[str, list[tuple[int, int, dict[str, list[str]]]]] = {}
    for (held_out, trial), rows in folds.groupby(["held_out", "trial"], sort=True):
        seeds = rows["seed"].unique()
        if len(seeds) != 1:
            raise ValueError(f"lodocv_folds: held_out={held_out!r} trial={trial} has several seeds {seeds.tolist()}")
        roles = {role: keys.tolist() for role, keys in rows.groupby("role")[SAMPLE_KEY]}
        by_fold.setdefault(held_out, []).append((int(trial), int(seeds[0]), roles))

    for protocol in protocols:
        for held_out, trials in by_fold.items():
            chosen = trials[:1] if protocol == "loco" else trials[: n_trials or len(trials)]
            for trial, seed, roles in chosen:
                yield _fold(protocol, held_out, trial, seed, roles)


def pretrain_pool_keys(folds: pd.DataFrame, held_out: str) -> list[str]:
    """Sorted sample keys of h's self-supervised pretraining pool (``schema.PRETRAIN_ROLES``).

    Every sample of the other cohorts, labelled or not; h itself never enters it.
    """
    _validate_lodocv_folds(folds)
    rows = folds[folds["held_out"] == held_out]
    if rows.empty:
        raise ValueError(f"held-out cohort {held_out!r} is not in lodocv_folds; it has {sorted(folds['held_out'].unique())}")
    pool = rows[rows["role"].isin(PRETRAIN_ROLES)]
    if (pool[COHORT] == held_out).any():
        raise ValueError(f"pretraining pool of {held_out!r} contains its own samples")
    return sorted(pool[SAMPLE_KEY].unique().tolist())


def iter_amu_holdout_folds(amu_folds: pd.DataFrame, n_trials: int | None = None) -> Iterator[FoldSpec]:
    """Folds of the AMU 207-sample matrix (protocol ``amu_holdout``, held-out name ``"AMU"``), by trial."""
    _require_columns(amu_folds, AMU_FOLD_COLUMNS, "amu_holdout_folds")
    _check_n_trials(n_trials)
    unknown = sorted(set(amu_folds["role"]) - set(AMU_ROLES))
    if unknown:
        raise ValueError(f"amu_holdout_folds has unknown roles {unknown}; expected {AMU_ROLES}")
    trials = sorted(amu_folds["trial"].unique())
    for trial in trials[: n_trials or len(trials)]:
        rows = amu_folds[amu_folds["trial"] == trial]
        seeds = rows["seed"].unique()
        if len(seeds) != 1:
            raise ValueError(f"amu_holdout_folds: trial {trial} has several seeds {seeds.tolist()}")
        train = sorted(rows.loc[rows["role"] == "train", SAMPLE_KEY])
        test = sorted(rows.loc[rows["role"] == "test", SAMPLE_KEY])
        if not train or not test:
            raise ValueError(f"amu_holdout_folds: trial {trial} has {len(train)} train and {len(test)} test samples")
        overlap = set(train) & set(test)
        if overlap:
            raise ValueError(f"amu_holdout_folds: trial {trial}: test samples also in training: {sorted(overlap)[:5]}")
        yield FoldSpec(AMU_PROTOCOL, AMU_HELD_OUT, int(trial), int(seeds[0]), train, test)
