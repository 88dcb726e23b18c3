"""LODOCV folds: no test sample ever trains or pretrains; same seed, same folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.io.validation import InputDataError
from icb_kedro.pipelines.folds.nodes import combine_folds, make_amu_holdout_folds, make_lodocv_folds
from icb_kedro.pipelines.folds.pipeline import create_pipeline
from icb_kedro.schema import FOLD_COLUMNS, PAPER_TRIAL_OFFSET, PRETRAIN_ROLES

PARAMS = {
    "base_seed": 1001,
    "kfold": {"n_splits": 3, "n_repeats": 2},
    "paper": {"n_trials": 4, "test_size": 0.2},
}


def toy_harmonized() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for cohort, n in (("A", 30), ("B", 20), ("C", 12)):
        labels = rng.integers(0, 2, n).astype(object)
        labels[:3] = None  # unlabelled samples
        labels[3], labels[4] = 0, 1
        rows.append(
            pd.DataFrame(
                {
                    "cohort": cohort,
                    "sample_key": [f"{cohort}:{i}" for i in range(n)],
                    "label": pd.array(labels, dtype="Int8"),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_no_test_sample_in_training_or_pretraining_rows():
    table = toy_harmonized()
    folds = combine_folds(*(make_lodocv_folds(table, c, PARAMS) for c in ("A", "B", "C")))
    assert list(folds.columns) == list(FOLD_COLUMNS)
    for (held_out, trial), fold in folds.groupby(["held_out", "trial"]):
        test = set(fold.loc[fold.role == "target_test", "sample_key"])
        train = set(fold.loc[fold.role.isin(["target_train", "source"]), "sample_key"])
        pretrain = set(fold.loc[fold.role.isin(PRETRAIN_ROLES), "sample_key"])
        assert test and not test & train and not test & pretrain
        assert not {
            k for k in pretrain if k.startswith(held_out + ":")
        }  # held-out cohort never pretrains
        assert set(fold.sample_key) == set(table.sample_key)  # every sample has exactly one role
        assert fold.sample_key.is_unique


def test_paper_splits_are_stratified_80_20_reproducible_and_seeded_per_trial():
    table = toy_harmonized()
    a = make_lodocv_folds(table, "A", PARAMS)
    pd.testing.assert_frame_equal(a, make_lodocv_folds(table, "A", PARAMS))
    paper = a[a.scheme == "holdout"]
    assert paper.groupby("trial").seed.first().tolist() == [1001, 1002, 1003, 1004]
    assert sorted(paper.trial.unique()) == [PAPER_TRIAL_OFFSET + t for t in range(4)]
    assert (
        paper.groupby("trial").repeat.first()
        == paper.groupby("trial").trial.first() - PAPER_TRIAL_OFFSET
    ).all()
    tests = [
        frozenset(paper[(paper.trial == t) & (paper.role == "target_test")].sample_key)
        for t in sorted(paper.trial.unique())
    ]
    assert len(set(tests)) > 1  # trials differ
    labelled = table[(table.cohort == "A") & table.label.notna()]
    test0 = labelled[labelled.sample_key.isin(tests[0])]
    assert len(test0) == int(np.ceil(0.2 * len(labelled)))
    assert 0 < test0.label.sum() < len(test0)


def test_kfold_repeats_partition_the_labelled_patients_stratified_and_seeded_per_repeat():
    table = toy_harmonized()
    a = make_lodocv_folds(table, "A", PARAMS)
    kfold = a[a.scheme == "kfold"]
    assert sorted(kfold.trial.unique()) == list(range(6))  # repeat * 3 + fold
    assert (
        kfold.groupby("trial")[["repeat", "seed"]].first().values.tolist()
        == [[0, 1001]] * 3 + [[1, 1002]] * 3
    )
    labelled = table[(table.cohort == "A") & table.label.notna()].set_index("sample_key")["label"]
    for repeat, rows in kfold.groupby("repeat"):
        tested = rows.loc[rows.role == "target_test", "sample_key"]
        assert sorted(tested) == sorted(labelled.index)  # every labelled patient exactly once
        for _, split in rows[rows.role == "target_test"].groupby("trial"):
            share = labelled.loc[split.sample_key].mean()
            assert abs(share - labelled.mean()) < 0.2  # stratified
    firsts = [
        frozenset(kfold[(kfold.trial == t) & (kfold.role == "target_test")].sample_key)
        for t in (0, 3)
    ]
    assert firsts[0] != firsts[1]  # the repeats are different partitions


def test_unknown_held_out_cohort_is_an_error():
    with pytest.raises(ValueError, match="'Z' is not in the harmonized table"):
        make_lodocv_folds(toy_harmonized(), "Z", PARAMS)


def test_a_one_class_cohort_cannot_be_held_out_but_still_trains():
    table = toy_harmonized()
    table.loc[table.cohort == "C", "label"] = table.loc[table.cohort == "C", "label"].where(
        lambda s: s.isna(), 1
    )  # responders only
    with pytest.raises(
        InputDataError,
        match=r"held-out cohort 'C' has \d+ responder\(s\) and 0 non-responder\(s\).*ICB_COHORTS",
    ):
        make_lodocv_folds(table, "C", PARAMS)
    folds = make_lodocv_folds(table, "A", PARAMS)  # C's rows are still source rows of A's folds
    assert set(folds.loc[folds.cohort == "C", "role"]) == {"source", "source_unlabelled"}


def test_amu_holdout_splits_patients_before_any_oversampling():
    amu = pd.DataFrame(
        {
            "sample_key": [f"amu_{i:03d}" for i in range(50)],
            "label": pd.array([1] * 18 + [0] * 32, dtype="Int8"),
        }
    )
    folds = make_amu_holdout_folds(amu, {"n_trials": 3, "base_seed": 42, "test_size": 0.2})
    for _, fold in folds.groupby("trial"):
        assert not set(fold[fold.role == "train"].sample_key) & set(
            fold[fold.role == "test"].sample_key
        )
        assert len(fold) == 50


def test_one_namespace_per_cohort_from_the_data_not_code():
    pipe = create_pipeline(cohorts=["Cohort_One", "Cohort-Two"])
    assert {n.namespace for n in pipe.nodes} == {"fold_Cohort_One", "fold_Cohort_Two", None}
