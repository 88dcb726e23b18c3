"""Evaluation protocols as views of the stored fold tables: who trains, who is scored.

Folds are made once by the ``folds`` pipeline; every model reads them through these
iterators, so every model is scored on exactly the same samples.

For held-out cohort h and trial (split) t of ``lodocv_folds``:

- ``transfer``: train = ``source`` + ``target_train``; test = ``target_test``, over the
  ``kfold`` trials: the K trials of a repeat test every labelled patient of h once.
- ``transfer_paper`` (the IC2Bert paper's protocol): the same roles over the ``holdout``
  trials (stratified 80/20 splits, each its own repeat).
- ``loco`` (strict leave-one-cohort-out, zero-shot): train = ``source``; test = every
  labelled sample of h (``target_train`` + ``target_test``). Both are the same in every
  trial, so it is emitted once per held-out cohort (its first K-fold trial, repeat 0).
- ``within``: train = ``target_train``; test = ``target_test``, over the ``kfold`` trials.

A model's predictions of one repeat are pooled before any metric (``evaluation.summary``).

``amu_holdout`` reads ``amu_holdout_folds`` (roles ``train``/``test``, held-out name "AMU").
Unlabelled samples (``*_unlabelled`` roles) never enter supervised train or test sets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

import pandas as pd
from pydantic import field_validator

from icb_kedro.config import Config
from icb_kedro.schema import (
    COHORT,
    FOLD_COLUMNS,
    PRETRAIN_ROLES,
    ROLE_SOURCE,
    ROLE_TARGET_TEST,
    ROLE_TARGET_TRAIN,
    ROLES,
    SAMPLE_KEY,
    SCHEME_HOLDOUT,
    SCHEME_KFOLD,
    SCHEMES,
)

LODOCV_PROTOCOLS: tuple[str, ...] = ("transfer", "loco", "within", "transfer_paper")
AMU_PROTOCOL = "amu_holdout"
AMU_HELD_OUT = "AMU"
AMU_FOLD_COLUMNS: tuple[str, ...] = ("trial", "seed", SAMPLE_KEY, "role")
AMU_ROLES: tuple[str, ...] = ("train", "test")

# Roles that make up the train and test sets of each protocol.
_PROTOCOL_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "transfer": ((ROLE_SOURCE, ROLE_TARGET_TRAIN), (ROLE_TARGET_TEST,)),
    "loco": ((ROLE_SOURCE,), (ROLE_TARGET_TRAIN, ROLE_TARGET_TEST)),
    "within": ((ROLE_TARGET_TRAIN,), (ROLE_TARGET_TEST,)),
    "transfer_paper": ((ROLE_SOURCE, ROLE_TARGET_TRAIN), (ROLE_TARGET_TEST,)),
}
# The splitting scheme each protocol reads.
_PROTOCOL_SCHEME: dict[str, str] = {
    "transfer": SCHEME_KFOLD,
    "loco": SCHEME_KFOLD,
    "within": SCHEME_KFOLD,
    "transfer_paper": SCHEME_HOLDOUT,
}


class FoldSpec(NamedTuple):
    """One scored fold: train on ``train_keys``, score ``test_keys`` (sample keys, sorted).

    ``trial`` names the split (one model fit); ``repeat`` the group of splits whose pooled
    predictions score each patient once (``schema``: lodocv_folds).
    """

    protocol: str
    held_out: str
    trial: int
    seed: int
    train_keys: list[str]
    test_keys: list[str]
    repeat: int


def _require_columns(table: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(table.columns)}")


def _check_n_trials(n_trials: int | None, name: str = "n_trials") -> None:
    if n_trials is not None and int(n_trials) < 1:
        raise ValueError(f"{name} must be None or >= 1, got {n_trials}")


def repeats_for(n_repeats: int | None | Mapping[str, int | None], protocol: str) -> int | None:
    """``n_repeats`` of one protocol: an int/None for all protocols, or a mapping by protocol."""
    if isinstance(n_repeats, Mapping):
        unknown = sorted(set(n_repeats) - set(LODOCV_PROTOCOLS))
        if unknown:
            raise ValueError(
                f"n_repeats names unknown protocols {unknown}; expected some of {LODOCV_PROTOCOLS}"
            )
        n_repeats = n_repeats.get(protocol)
    _check_n_trials(n_repeats, "n_repeats")
    return None if n_repeats is None else int(n_repeats)


def _validate_lodocv_folds(folds: pd.DataFrame) -> None:
    _require_columns(folds, FOLD_COLUMNS, "lodocv_folds")
    if folds[list(FOLD_COLUMNS)].isna().any().any():
        raise ValueError(
            "lodocv_folds has missing values in " + str(folds.columns[folds.isna().any()].tolist())
        )
    unknown = sorted(set(folds["role"]) - set(ROLES))
    if unknown:
        raise ValueError(f"lodocv_folds has unknown roles {unknown}; expected {ROLES}")
    unknown = sorted(set(folds["scheme"]) - set(SCHEMES))
    if unknown:
        raise ValueError(f"lodocv_folds has unknown schemes {unknown}; expected {SCHEMES}")
    # Only h's own samples may carry target roles, and h's samples never carry source roles.
    is_target_role = folds["role"].str.startswith("target_")
    misplaced = folds[is_target_role != (folds[COHORT] == folds["held_out"])]
    if len(misplaced):
        row = misplaced.iloc[0]
        raise ValueError(
            f"lodocv_folds: sample {row[SAMPLE_KEY]!r} of cohort {row[COHORT]!r} has role "
            f"{row['role']!r} for held-out cohort {row['held_out']!r} ({len(misplaced)} such rows)"
        )
    duplicated = folds.duplicated(["held_out", "trial", SAMPLE_KEY])
    if duplicated.any():
        row = folds[duplicated].iloc[0]
        raise ValueError(
            f"lodocv_folds: sample {row[SAMPLE_KEY]!r} has several roles in "
            f"held_out={row['held_out']!r} trial={row['trial']}"
        )


def check_kfold_partitions(folds: pd.DataFrame) -> None:
    """Each K-fold repeat must test every labelled patient of h exactly once: the premise of
    pooling its out-of-fold predictions (a patient tested twice would count twice).

    Checked on the whole table where the folds pipeline writes it, not on every read: a run
    that selects one trial (``folds.cells``) reads a part that is not a partition on its own.
    """
    kfold = folds[
        (folds["scheme"] == SCHEME_KFOLD)
        & folds["role"].isin((ROLE_TARGET_TRAIN, ROLE_TARGET_TEST))
    ]
    if kfold.empty:
        return
    ids = ["held_out", "repeat", SAMPLE_KEY]
    tested = (
        kfold[kfold["role"] == ROLE_TARGET_TEST]
        .groupby(ids)
        .size()
        .rename("n_tested")
        .reset_index()
    )
    counts = kfold[ids].drop_duplicates().merge(tested, on=ids, how="left").fillna({"n_tested": 0})
    wrong = counts[counts["n_tested"] != 1]
    if len(wrong):
        row = wrong.iloc[0]
        raise ValueError(
            f"lodocv_folds: K-fold repeat {row['repeat']} of held-out cohort {row['held_out']!r} "
            f"tests sample {row[SAMPLE_KEY]!r} {int(row['n_tested'])} time(s) ({len(wrong)} such "
            "samples); every labelled sample must be tested exactly once per repeat"
        )


def _fold(
    protocol: str, held_out: str, trial: int, seed: int, roles: dict[str, list[str]], repeat: int
) -> FoldSpec:
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
        raise ValueError(
            f"{protocol} fold {held_out!r}/{trial}: test samples also in training: "
            f"{sorted(overlap)[:5]}"
        )
    return FoldSpec(protocol, held_out, int(trial), int(seed), train, test, int(repeat))


def iter_protocol_folds(
    folds: pd.DataFrame,
    protocols: Sequence[str],
    n_repeats: int | None | Mapping[str, int | None] = None,
    max_trials: int | None = None,
) -> Iterator[FoldSpec]:
    """Folds of the LODOCV protocols, in order protocol -> held-out cohort (sorted) -> trial.

    ``n_repeats`` keeps the first ``n_repeats`` repeats of each held-out cohort (all if None;
    a mapping gives it per protocol): for the K-fold protocols every trial of those repeats,
    for ``transfer_paper`` that many 80/20 splits. ``loco`` yields one fold per held-out
    cohort whatever ``n_repeats`` is. ``max_trials`` then keeps the first ``max_trials``
    trials of each held-out cohort (interpretation: explain a few splits, not all).
    """
    if isinstance(protocols, str):
        protocols = [protocols]
    unknown = [p for p in protocols if p not in LODOCV_PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown LODOCV protocols {unknown}; expected some of {LODOCV_PROTOCOLS}")
    _check_n_trials(max_trials, "max_trials")
    _validate_lodocv_folds(folds)

    # Group once: (held_out, scheme) -> [(repeat, trial, seed, {role: keys})] sorted by trial.
    by_fold: dict[tuple[str, str], list[tuple[int, int, int, dict[str, list[str]]]]] = {}
    for (held_out, scheme, trial), rows in folds.groupby(
        ["held_out", "scheme", "trial"], sort=True
    ):
        seeds, repeats = rows["seed"].unique(), rows["repeat"].unique()
        if len(seeds) != 1 or len(repeats) != 1:
            raise ValueError(
                f"lodocv_folds: held_out={held_out!r} trial={trial} has several seeds "
                f"{seeds.tolist()} or repeats {repeats.tolist()}"
            )
        roles = {role: keys.tolist() for role, keys in rows.groupby("role")[SAMPLE_KEY]}
        by_fold.setdefault((held_out, scheme), []).append(
            (int(repeats[0]), int(trial), int(seeds[0]), roles)
        )
    cohorts = sorted({held_out for held_out, _ in by_fold})

    for protocol in protocols:
        scheme = _PROTOCOL_SCHEME[protocol]
        wanted = repeats_for(n_repeats, protocol)
        for held_out in cohorts:
            trials = by_fold.get((held_out, scheme), [])
            if not trials and SELECTED_CELLS in folds.attrs:
                continue  # the run's folds.cells chose none of this protocol's splits
            if not trials:
                raise ValueError(
                    f"lodocv_folds has no {scheme} splits of held-out cohort {held_out!r}, which "
                    f"protocol {protocol!r} reads (folds.lodocv: kfold.n_repeats / paper.n_trials)"
                )
            if protocol == "loco":
                chosen = trials[:1]
            else:
                first = sorted({repeat for repeat, *_ in trials})[: wanted or None]
                chosen = [t for t in trials if t[0] in first]
            for repeat, trial, seed, roles in chosen[: max_trials or None]:
                yield _fold(protocol, held_out, trial, seed, roles, repeat)


class FoldCells(Config):
    """``params:folds.cells``: the (held-out cohort, trial) cells the fold-looping model nodes
    score; null = all. The cell axis of a run: ``kedro run --params folds.cells.trials=3``
    scores trial 3 only; the grid runs one cell per session this way. In the namespaced
    pipelines (amu, ic2bert_*) the held-out cohort is also the namespace
    (``--namespaces fold_<cohort>``)."""

    held_out: tuple[str, ...] | None = None
    trials: tuple[int, ...] | None = None

    @field_validator("held_out", "trials", mode="before")
    @classmethod
    def _one_is_a_list_of_one(cls, value):  # --params folds.cells.trials=3 gives a scalar
        return [value] if isinstance(value, str | int) else value


# ``DataFrame.attrs`` key of a fold table reduced by :func:`select_cells` (pandas carries
# attrs through the row selections the fold loops make).
SELECTED_CELLS = "folds.cells"


def select_cells(
    folds: pd.DataFrame,
    held_out: Sequence[str] | None = None,
    trials: Sequence[int] | None = None,
    name: str = "lodocv_folds",
) -> pd.DataFrame:
    """The rows of ``folds`` in the chosen (held-out cohort, trial) cells; None = all.

    What the grid's per-cell slicing of the fold tables did, as a view: the iterators above
    then yield exactly the chosen folds (a repeat's other trials are simply absent). A
    selection that leaves nothing, or names a trial the table does not hold, is an error,
    never an empty run; so is a held-out name that a table of several cohorts lacks (a typo
    next to a valid name). A one-cohort table (a namespaced pipeline's) cannot tell a typo
    from another namespace's cohort: there only "keeps nothing" is checked.
    """
    if held_out is None and trials is None:
        return folds
    keep = pd.Series(True, index=folds.index)
    if held_out is not None:
        present = sorted(folds["held_out"].unique())
        keep &= folds["held_out"].isin(list(held_out))
        unknown = sorted(set(held_out) - set(present))
        if unknown and len(present) > 1:
            raise ValueError(
                f"{name}: folds.cells.held_out names {unknown}, not held-out cohorts of this "
                f"table (its cohorts: {present})"
            )
        if not keep.any():
            raise ValueError(
                f"{name}: folds.cells.held_out={list(held_out)} keeps none of its held-out "
                f"cohorts {present} (a namespaced pipeline: select the cohort with "
                f"--namespaces fold_<cohort> instead)"
            )
    if trials is not None:
        present = sorted(int(t) for t in folds.loc[keep, "trial"].unique())
        missing = sorted(set(int(t) for t in trials) - set(present))
        if missing:
            raise ValueError(
                f"{name}: folds.cells.trials {missing} are not in the table (its trials: "
                f"{present[:12]}{' ...' if len(present) > 12 else ''})"
            )
        keep &= folds["trial"].isin(list(trials))
    selected = folds[keep].reset_index(drop=True)
    # Marks a part chosen on purpose: a protocol whose splits it left out (transfer_paper's
    # 80/20 trials when K-fold trial 3 is chosen) is then skipped, not an error.
    selected.attrs[SELECTED_CELLS] = {"held_out": held_out, "trials": trials}
    return selected


def pretrain_pool_keys(folds: pd.DataFrame, held_out: str) -> list[str]:
    """Sorted sample keys of h's self-supervised pretraining pool (``schema.PRETRAIN_ROLES``).

    Every sample of the other cohorts, labelled or not; h itself never enters it.
    """
    _validate_lodocv_folds(folds)
    rows = folds[folds["held_out"] == held_out]
    if rows.empty:
        raise ValueError(
            f"held-out cohort {held_out!r} is not in lodocv_folds; it has "
            f"{sorted(folds['held_out'].unique())}"
        )
    pool = rows[rows["role"].isin(PRETRAIN_ROLES)]
    if (pool[COHORT] == held_out).any():
        raise ValueError(f"pretraining pool of {held_out!r} contains its own samples")
    return sorted(pool[SAMPLE_KEY].unique().tolist())


def iter_amu_holdout_folds(
    amu_folds: pd.DataFrame, n_trials: int | None = None
) -> Iterator[FoldSpec]:
    """Folds of the AMU 207-sample matrix (protocol ``amu_holdout``, held-out name ``"AMU"``), by
    trial."""
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
            raise ValueError(
                f"amu_holdout_folds: trial {trial} has {len(train)} train and {len(test)} "
                "test samples"
            )
        overlap = set(train) & set(test)
        if overlap:
            raise ValueError(
                f"amu_holdout_folds: trial {trial}: test samples also in training: "
                f"{sorted(overlap)[:5]}"
            )
        yield FoldSpec(
            AMU_PROTOCOL, AMU_HELD_OUT, int(trial), int(seeds[0]), train, test, int(trial)
        )
