"""amu nodes on small synthetic frames (tiny model, 2 epochs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.models.amu.results import LEARNING_COLUMNS
from icb_kedro.models.amu.runner import (
    COPY_SUFFIX,
    copies_in_test,
    leaky_oversampled_split,
    original_key,
)
from icb_kedro.pipelines.amu import nodes
from icb_kedro.schema import PREDICTION_COLUMNS

from .conftest import PANEL, tiny_params


def test_leaky_split_duplicates_responders_before_splitting(synthetic_inputs) -> None:
    labels = synthetic_inputs["amu_matrix"].set_index("sample_key")["label"]
    train, test = leaky_oversampled_split(labels, seed=42)
    rows = train + test
    assert len(rows) == 45 + 15 and len(set(rows)) == 60  # 30 NR + 2 x 15 R
    assert sum(k.endswith(COPY_SUFFIX) for k in rows) == 15
    assert len(test) == 12
    assert copies_in_test(train, test) == sum(
        original_key(k) in {original_key(t) for t in train} for k in test
    )


def test_leakage_audit_on_the_real_protocol_sizes() -> None:
    """207 patients (73 R) -> 280 rows; about 21 of 56 validation rows are training
    copies (spec 1.6)."""
    labels = pd.Series([1] * 73 + [0] * 134, index=[f"amu_{i:03d}" for i in range(207)])
    counts = []
    for seed in range(42, 47):
        train, test = leaky_oversampled_split(labels, seed)
        assert (len(train), len(test)) == (224, 56)
        counts.append(copies_in_test(train, test))
    assert 12 <= np.mean(counts) <= 30
    frame = pd.DataFrame({"sample_key": labels.index, "label": labels.to_numpy()})
    folds = pd.DataFrame(
        {
            "trial": [0, 0],
            "seed": [42, 42],
            "sample_key": ["amu_000", "amu_001"],
            "role": ["train", "test"],
        }
    )
    audit = nodes.leakage_audit(frame, folds, tiny_params())
    assert audit.loc[0, "n_test_copies_of_train"] == counts[0]
    assert audit.loc[0, "n_test_responders"] == 29


def test_study_protocols_predict_the_stored_test_splits(synthetic_inputs) -> None:
    predictions, weights = nodes.run_study_protocols(
        synthetic_inputs["amu_matrix"], synthetic_inputs["amu_holdout_folds"], tiny_params()
    )
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    honest = predictions[predictions["protocol"] == "amu_holdout"]
    folds = synthetic_inputs["amu_holdout_folds"]
    for trial, rows in honest.groupby("trial"):
        expected = folds[(folds["trial"] == trial) & (folds["role"] == "test")]["sample_key"]
        assert sorted(rows["sample_key"]) == sorted(expected)
        assert (rows["n_train"] == 36).all() and rows["threshold"].nunique() == 1
    leaky = predictions[predictions["protocol"] == "amu_holdout_leaky"]
    assert leaky.groupby("trial").size().tolist() == [12, 12]
    assert (leaky["n_train"] == 48).all()
    assert sorted(weights) == [
        "amu_holdout_leaky|AMU|0",
        "amu_holdout_leaky|AMU|1",
        "amu_holdout|AMU|0",
        "amu_holdout|AMU|1",
    ]
    assert (
        weights["amu_holdout|AMU|0"]["n_synthetic"] > 0
        and weights["amu_holdout_leaky|AMU|0"]["n_synthetic"] == 0
    )
    assert predictions["y_prob"].between(0, 1).all()


def test_leaky_protocol_only_when_named(synthetic_inputs) -> None:
    params = tiny_params(study={"protocols": ["amu_holdout"], "n_trials": 1})
    predictions, _ = nodes.run_study_protocols(
        synthetic_inputs["amu_matrix"], synthetic_inputs["amu_holdout_folds"], params
    )
    assert set(predictions["protocol"]) == {"amu_holdout"}
    with pytest.raises(ValueError, match=r"params:amu: 'study\.protocols\.0'"):
        nodes.run_study_protocols(
            synthetic_inputs["amu_matrix"],
            synthetic_inputs["amu_holdout_folds"],
            tiny_params(study={"protocols": ["leaky"]}),
        )


def test_cohort_protocols_of_one_held_out_cohort(synthetic_inputs) -> None:
    s = synthetic_inputs
    predictions, weights = nodes.run_cohort_protocols(
        s["harmonized_expression"],
        s["expression_standardized"],
        s["gene_panels"],
        s["lodocv_folds"],
        tiny_params(),
        held_out="CohortB",
    )
    assert set(predictions["cohort"]) == {"CohortB"}
    assert set(predictions["protocol"]) == {"transfer", "loco", "within"}
    assert not predictions["sample_key"].str.startswith("CohortA").any()
    loco = predictions[predictions["protocol"] == "loco"]
    labelled_b = s["harmonized_expression"].query("cohort == 'CohortB'")["label"].notna().sum()
    assert len(loco) == labelled_b  # loco scores every labelled sample of the held-out cohort
    assert all(w["features"] == PANEL for w in weights.values())
    with pytest.raises(ValueError, match="no folds"):
        nodes.run_cohort_protocols(
            s["harmonized_expression"],
            s["expression_standardized"],
            s["gene_panels"],
            s["lodocv_folds"],
            tiny_params(),
            held_out="Nope",
        )
    with pytest.raises(ValueError, match=r"params:amu: 'cohorts\.expression'"):
        bad = tiny_params(cohorts={**tiny_params()["cohorts"], "expression": "tpm"})
        nodes.run_cohort_protocols(
            s["harmonized_expression"],
            s["expression_standardized"],
            s["gene_panels"],
            s["lodocv_folds"],
            bad,
            held_out="CohortB",
        )


def test_final_model_embeddings_and_pyfunc(synthetic_inputs) -> None:
    s = synthetic_inputs
    final = nodes.train_final_model(
        s["harmonized_expression"], s["expression_standardized"], s["gene_panels"], tiny_params()
    )
    labelled = int(s["harmonized_expression"]["label"].notna().sum())
    assert final["n_train"] == labelled and final["input_scale"] == "log2_tpm1"
    embeddings = nodes.export_gene_embeddings(final)
    assert list(embeddings.columns) == ["gene"] + [f"dim_{i}" for i in range(20)]
    assert embeddings["gene"].tolist() == PANEL
    model = nodes.build_pyfunc_model(final)
    scores = model.predict(None, s["harmonized_expression"])
    assert len(scores) == len(s["harmonized_expression"]) and scores["y_prob"].between(0, 1).all()


def test_report_and_combine(synthetic_inputs) -> None:
    with pytest.raises(ValueError, match="no predictions"):
        nodes.combine_predictions(pd.DataFrame(columns=list(PREDICTION_COLUMNS)))
    overall = pd.DataFrame(
        {
            "protocol": ["amu_holdout", "amu_holdout_leaky"],
            "n_cohorts": [1, 1],
            "auroc_mean": [0.6, 0.8],
            "ci_low": [0.5, 0.7],
            "ci_high": [0.7, 0.9],
            "auprc_mean": [0.5, 0.7],
            "accuracy_mean": [0.6, 0.7],
            "f1_mean": [0.5, 0.6],
        }
    )
    audit = pd.DataFrame(
        {
            "trial": [0],
            "seed": [42],
            "n_train": [224],
            "n_test": [56],
            "n_test_responders": [29],
            "n_test_copies_of_train": [21],
        }
    )
    text = nodes.write_report(
        overall, pd.DataFrame(columns=["protocol", "cohort", "auroc_mean"]), audit
    )
    assert "+0.200 from leakage" in text and "0.941" in text and "21.0 of 56" in text


def test_learning_check_puts_the_training_fit_beside_the_held_out_auroc() -> None:
    predictions = pd.DataFrame(
        {
            "protocol": ["loco"] * 4,
            "cohort": ["A"] * 4,
            "trial": [0] * 4,
            "y_true": [0, 1, 0, 1],
            "y_prob": [0.1, 0.9, 0.8, 0.2],
        }
    )
    fit = {
        "protocol": "loco",
        "cohort": "A",
        "repeat": 0,
        "trial": 0,
        "n_train": 30,
        "n_synthetic": 6,
        "loss_history": [0.7, 0.5, 0.4],
        "train_auroc": 0.91,
        "fit_seconds": 1.5,
    }
    table = nodes.learning_check(predictions, {"loco|A|0": fit})
    assert table.columns.tolist() == list(LEARNING_COLUMNS)
    row = table.iloc[0]
    assert (row.epochs, row.final_loss, row.train_auroc, row.test_auroc) == (3, 0.4, 0.91, 0.75)
