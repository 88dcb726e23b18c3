"""Protocols are leak-free views of the folds table."""

from __future__ import annotations

import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import (
    FoldSpec,
    iter_amu_holdout_folds,
    iter_protocol_folds,
    pretrain_pool_keys,
)


def keys_with_role(folds, held_out, trial, *roles):
    rows = folds[(folds["held_out"] == held_out) & (folds["trial"] == trial) & folds["role"].isin(roles)]
    return sorted(rows["sample_key"])


@pytest.mark.parametrize("protocol", ["transfer", "loco", "within"])
def test_no_test_key_is_ever_a_training_key(folds, protocol):
    specs = list(iter_protocol_folds(folds, [protocol]))
    assert specs and all(isinstance(spec, FoldSpec) for spec in specs)
    for spec in specs:
        assert not set(spec.train_keys) & set(spec.test_keys)
        assert all(key.startswith(spec.held_out + ":") for key in spec.test_keys)
        assert not any(":U" in key for key in spec.train_keys + spec.test_keys)  # unlabelled never scored or fitted


def test_protocol_train_and_test_sets(folds):
    held_out, trial = "CohortA", 1
    specs = {(s.protocol, s.held_out, s.trial): s for s in iter_protocol_folds(folds, ["transfer", "loco", "within"])}
    transfer = specs[("transfer", held_out, trial)]
    assert transfer.train_keys == keys_with_role(folds, held_out, trial, "source", "target_train")
    assert transfer.test_keys == keys_with_role(folds, held_out, trial, "target_test")
    assert transfer.seed == 1001 + trial
    within = specs[("within", held_out, trial)]
    assert within.train_keys == keys_with_role(folds, held_out, trial, "target_train")
    assert within.test_keys == transfer.test_keys
    loco = specs[("loco", held_out, 0)]
    assert loco.train_keys == keys_with_role(folds, held_out, 0, "source")
    assert loco.test_keys == keys_with_role(folds, held_out, 0, "target_train", "target_test")
    assert not any(key.startswith(held_out) for key in loco.train_keys)


def test_loco_is_emitted_once_per_cohort_and_n_trials_caps(folds):
    cohorts, n_trials = sorted(folds["held_out"].unique()), folds["trial"].nunique()
    assert len(cohorts) == 3 and n_trials == 3
    loco = list(iter_protocol_folds(folds, ["loco"]))
    assert [s.held_out for s in loco] == cohorts
    assert {s.trial for s in loco} == {0}
    transfer = list(iter_protocol_folds(folds, ["transfer"]))
    assert len(transfer) == len(cohorts) * n_trials
    capped = list(iter_protocol_folds(folds, ["transfer", "loco"], n_trials=2))
    assert len(capped) == len(cohorts) * 2 + len(cohorts)
    assert {s.trial for s in capped} == {0, 1}
    # Order: protocol, then held-out cohort, then trial; same input -> same sequence.
    assert [(s.protocol, s.held_out, s.trial) for s in capped] == sorted(
        [(s.protocol, s.held_out, s.trial) for s in capped], key=lambda t: (["transfer", "loco"].index(t[0]), t[1], t[2])
    )
    assert capped == list(iter_protocol_folds(folds, ["transfer", "loco"], n_trials=2))


def test_invalid_requests_and_corrupt_folds_raise(folds):
    with pytest.raises(ValueError, match="unknown LODOCV protocols"):
        list(iter_protocol_folds(folds, ["amu_holdout"]))
    with pytest.raises(ValueError, match="n_trials"):
        list(iter_protocol_folds(folds, ["transfer"], n_trials=0))
    with pytest.raises(ValueError, match="lacks columns"):
        list(iter_protocol_folds(folds.drop(columns="role"), ["transfer"]))
    leaked = pd.concat([folds, folds[folds["role"] == "target_test"].head(1).assign(role="target_train")])
    with pytest.raises(ValueError, match="several roles"):
        list(iter_protocol_folds(leaked, ["transfer"]))
    own_source = folds.copy()
    row = own_source.index[(own_source["held_out"] == "CohortA") & (own_source["role"] == "target_train")][0]
    own_source.loc[row, "role"] = "source"
    with pytest.raises(ValueError, match="has role 'source'"):
        list(iter_protocol_folds(own_source, ["loco"]))
    with pytest.raises(ValueError, match="unknown roles"):
        list(iter_protocol_folds(folds.replace({"role": {"source": "train"}}), ["loco"]))


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
    assert [(s.protocol, s.held_out, s.trial, s.seed) for s in specs] == [("amu_holdout", "AMU", t, 42 + t) for t in range(3)]
    for spec in specs:
        assert len(spec.test_keys) == 2 and len(spec.train_keys) == 8
        assert not set(spec.test_keys) & set(spec.train_keys)
    assert len(list(iter_amu_holdout_folds(amu, n_trials=2))) == 2
    with pytest.raises(ValueError, match="unknown roles"):
        list(iter_amu_holdout_folds(amu.replace({"role": {"test": "validation"}})))
