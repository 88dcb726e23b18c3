"""Protocols are leak-free views of the folds table."""

from __future__ import annotations

import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import (
    FoldSpec,
    check_kfold_partitions,
    iter_amu_holdout_folds,
    iter_protocol_folds,
    pretrain_pool_keys,
)
from icb_kedro.schema import PAPER_TRIAL_OFFSET

from .conftest import N_PAPER, N_REPEATS, N_SPLITS


def keys_with_role(folds, held_out, trial, *roles):
    rows = folds[
        (folds["held_out"] == held_out) & (folds["trial"] == trial) & folds["role"].isin(roles)
    ]
    return sorted(rows["sample_key"])


@pytest.mark.parametrize("protocol", ["transfer", "loco", "within", "transfer_paper"])
def test_no_test_key_is_ever_a_training_key(folds, protocol):
    specs = list(iter_protocol_folds(folds, [protocol]))
    assert specs and all(isinstance(spec, FoldSpec) for spec in specs)
    for spec in specs:
        assert not set(spec.train_keys) & set(spec.test_keys)
        assert all(key.startswith(spec.held_out + ":") for key in spec.test_keys)
        assert not any(
            ":U" in key for key in spec.train_keys + spec.test_keys
        )  # unlabelled never scored or fitted


@pytest.mark.parametrize("protocol", ["transfer", "within"])
def test_each_kfold_repeat_scores_every_labelled_patient_exactly_once(folds, protocol):
    labelled = folds[
        folds["role"].isin(["target_train", "target_test"]) & (folds["scheme"] == "kfold")
    ]
    by_repeat: dict[tuple[str, int], list[str]] = {}
    for spec in iter_protocol_folds(folds, [protocol]):
        by_repeat.setdefault((spec.held_out, spec.repeat), []).extend(spec.test_keys)
    assert len(by_repeat) == 3 * N_REPEATS
    for (held_out, repeat), tested in by_repeat.items():
        expected = labelled[(labelled["held_out"] == held_out) & (labelled["repeat"] == repeat)][
            "sample_key"
        ].unique()
        assert sorted(tested) == sorted(expected)  # each once: no duplicate, none missing
    # Repeats are different partitions (seeded 1001 + r), not copies of one another.
    splits = {
        r: {
            tuple(s.test_keys)
            for s in iter_protocol_folds(folds, [protocol])
            if s.held_out == "CohortA" and s.repeat == r
        }
        for r in range(N_REPEATS)
    }
    assert splits[0] != splits[1]


def test_protocol_train_and_test_sets(folds):
    held_out, trial = "CohortA", 1
    specs = {
        (s.protocol, s.held_out, s.trial): s
        for s in iter_protocol_folds(folds, ["transfer", "loco", "within", "transfer_paper"])
    }
    transfer = specs[("transfer", held_out, trial)]
    assert transfer.train_keys == keys_with_role(folds, held_out, trial, "source", "target_train")
    assert transfer.test_keys == keys_with_role(folds, held_out, trial, "target_test")
    assert (transfer.seed, transfer.repeat) == (1001, 0)  # trial 1 = fold 1 of repeat 0
    within = specs[("within", held_out, trial)]
    assert within.train_keys == keys_with_role(folds, held_out, trial, "target_train")
    assert within.test_keys == transfer.test_keys
    loco = specs[("loco", held_out, 0)]
    assert loco.train_keys == keys_with_role(folds, held_out, 0, "source")
    assert loco.test_keys == keys_with_role(folds, held_out, 0, "target_train", "target_test")
    assert not any(key.startswith(held_out) for key in loco.train_keys)
    paper = specs[("transfer_paper", held_out, PAPER_TRIAL_OFFSET + 1)]
    assert (paper.repeat, paper.seed) == (1, 1002)
    assert paper.test_keys == keys_with_role(folds, held_out, PAPER_TRIAL_OFFSET + 1, "target_test")


def test_loco_is_emitted_once_per_cohort_and_n_repeats_caps(folds):
    cohorts = sorted(folds["held_out"].unique())
    assert len(cohorts) == 3
    loco = list(iter_protocol_folds(folds, ["loco"]))
    assert [s.held_out for s in loco] == cohorts
    assert {(s.trial, s.repeat) for s in loco} == {(0, 0)}
    transfer = list(iter_protocol_folds(folds, ["transfer"]))
    assert len(transfer) == len(cohorts) * N_SPLITS * N_REPEATS
    capped = list(iter_protocol_folds(folds, ["transfer", "loco"], n_repeats=1))
    assert len(capped) == len(cohorts) * N_SPLITS + len(cohorts)
    assert {s.repeat for s in capped} == {0} and {s.trial for s in capped} == set(range(N_SPLITS))
    # Order: protocol, then held-out cohort, then trial; same input -> same sequence.
    assert [(s.protocol, s.held_out, s.trial) for s in capped] == sorted(
        [(s.protocol, s.held_out, s.trial) for s in capped],
        key=lambda t: (["transfer", "loco"].index(t[0]), t[1], t[2]),
    )
    assert capped == list(iter_protocol_folds(folds, ["transfer", "loco"], n_repeats=1))
    # Per protocol, and max_trials (interpretation explains a few splits).
    mixed = list(
        iter_protocol_folds(
            folds, ["transfer", "transfer_paper"], {"transfer": 1, "transfer_paper": 2}
        )
    )
    assert sum(s.protocol == "transfer_paper" for s in mixed) == len(cohorts) * N_PAPER
    assert len(list(iter_protocol_folds(folds, ["transfer"], 1, max_trials=1))) == len(cohorts)


def test_invalid_requests_and_corrupt_folds_raise(folds):
    with pytest.raises(ValueError, match="unknown LODOCV protocols"):
        list(iter_protocol_folds(folds, ["amu_holdout"]))
    with pytest.raises(ValueError, match="n_repeats"):
        list(iter_protocol_folds(folds, ["transfer"], n_repeats=0))
    with pytest.raises(ValueError, match="unknown protocols"):
        list(iter_protocol_folds(folds, ["transfer"], n_repeats={"transfr": 1}))
    with pytest.raises(ValueError, match="lacks columns"):
        list(iter_protocol_folds(folds.drop(columns="role"), ["transfer"]))
    with pytest.raises(ValueError, match="no holdout splits"):
        list(iter_protocol_folds(folds[folds["scheme"] == "kfold"], ["transfer_paper"]))
    leaked = pd.concat(
        [folds, folds[folds["role"] == "target_test"].head(1).assign(role="target_train")]
    )
    with pytest.raises(ValueError, match="several roles"):
        list(iter_protocol_folds(leaked, ["transfer"]))
    own_source = folds.copy()
    row = own_source.index[
        (own_source["held_out"] == "CohortA") & (own_source["role"] == "target_train")
    ][0]
    own_source.loc[row, "role"] = "source"
    with pytest.raises(ValueError, match="has role 'source'"):
        list(iter_protocol_folds(own_source, ["loco"]))
    with pytest.raises(ValueError, match="unknown roles"):
        list(iter_protocol_folds(folds.replace({"role": {"source": "train"}}), ["loco"]))


def test_a_kfold_repeat_that_tests_a_patient_twice_or_never_is_refused(folds):
    check_kfold_partitions(folds)  # the real table passes
    kfold_test = folds[(folds["scheme"] == "kfold") & (folds["role"] == "target_test")]
    row = kfold_test.index[0]
    twice = folds.copy()
    # the same patient also tested in the repeat's next split (instead of training there)
    first = folds.loc[row]
    other = twice.index[
        (twice["held_out"] == first["held_out"])
        & (twice["trial"] == first["trial"] + 1)
        & (twice["sample_key"] == first["sample_key"])
    ]
    twice.loc[other, "role"] = "target_test"
    with pytest.raises(ValueError, match="2 time"):
        check_kfold_partitions(twice)
    never = folds.copy()
    never.loc[row, "role"] = "target_train"
    with pytest.raises(ValueError, match="0 time"):
        check_kfold_partitions(never)


def test_pretrain_pool_is_every_other_cohort_sample(folds):
    pool = pretrain_pool_keys(folds, "CohortB")
    expected = sorted(folds.loc[folds["cohort"] != "CohortB", "sample_key"].unique())
    assert pool == expected
    assert any(":U" in key for key in pool)  # unlabelled samples of other cohorts pretrain too
    with pytest.raises(ValueError, match="not in lodocv_folds"):
        pretrain_pool_keys(folds, "CohortZ")


def test_amu_holdout_folds():
    rows = []
    for trial in range(3):
        keys = [f"amu_{i:03d}" for i in range(10)]
        test = set(keys[trial * 2 : trial * 2 + 2])
        rows += [(trial, 42 + trial, key, "test" if key in test else "train") for key in keys]
    amu = pd.DataFrame(rows, columns=["trial", "seed", "sample_key", "role"])
    specs = list(iter_amu_holdout_folds(amu))
    assert [(s.protocol, s.held_out, s.trial, s.seed) for s in specs] == [
        ("amu_holdout", "AMU", t, 42 + t) for t in range(3)
    ]
    for spec in specs:
        assert len(spec.test_keys) == 2 and len(spec.train_keys) == 8
        assert not set(spec.test_keys) & set(spec.train_keys)
    assert len(list(iter_amu_holdout_folds(amu, n_trials=2))) == 2
    with pytest.raises(ValueError, match="unknown roles"):
        list(iter_amu_holdout_folds(amu.replace({"role": {"test": "validation"}})))
