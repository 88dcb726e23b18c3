"""Nodes of the baselines pipeline: the published signatures on the AMU matrix (issue 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import iter_amu_holdout_folds
from icb_kedro.models.baselines import protocol_runs, signature_predictions
from icb_kedro.pipelines.baselines import nodes
from icb_kedro.schema import PREDICTION_COLUMNS

from .conftest import SENTINEL, fit_model


def _amu_signature_files(**extra: str) -> dict:
    """The toy signatures plus two over the synthetic AMU genes (responders have A0, A1 x3)."""
    from .conftest import SIGNATURE_FILES  # noqa: PLC0415

    files = dict(SIGNATURE_FILES)
    files["signature_INFO.txt"] += (
        "AMU_UP\tGSVA\tsensitive\t6\nAMU_WM\tweighted_mean\tresistance\t7\n"
    )
    files["AMU_UP.csv"] = "gene\nA0\nA1\nA2\n"
    files["AMU_WM.csv"] = "gene;coef\nA3;1\nA4;1\nA0;-1\n"  # resistance: sign-flipped
    files.update(extra)
    return files


def test_amu_signatures_are_scored_on_exactly_the_amu_holdout_test_rows(
    synthetic_inputs, tiny_params, monkeypatch
):
    inputs = synthetic_inputs
    signatures = nodes.parse_signatures(_amu_signature_files())
    coverage = nodes.check_amu_signature_coverage(
        signatures, inputs["amu_matrix"], tiny_params["signatures"]
    )
    status = coverage.set_index("signature")["status"].to_dict()
    assert status == {
        "AMU_UP": "scored",
        "AMU_WM": "scored",
        **{s: "failed" for s in ("COX_IS", "DOWN", "SPARSE", "UP", "WM")},
    }
    scores = nodes.score_amu_signatures(inputs["amu_matrix"], signatures, coverage, tiny_params)
    assert list(scores.columns) == ["sample_key", "cohort", "label", "sig_AMU_UP", "sig_AMU_WM"]
    assert len(scores) == len(inputs["amu_matrix"]) and set(scores["cohort"]) == {"AMU"}
    assert (
        scores.filter(like="sig_").notna().all().all()
        and (scores.filter(like="sig_").std() > 0).all()
    )

    predictions = nodes.predict_amu_signatures(scores, inputs["amu_holdout_folds"], tiny_params)
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    folds = list(
        iter_amu_holdout_folds(inputs["amu_holdout_folds"], tiny_params["amu_holdout"]["n_trials"])
    )
    assert len(folds) == 2  # n_trials: 2 of the fixture's 3 splits
    expected = {
        (f.protocol, f.held_out, f.trial): (sorted(f.test_keys), len(f.train_keys)) for f in folds
    }
    labels = inputs["amu_matrix"].set_index("sample_key")["label"]
    for name in ("sig_AMU_UP", "sig_AMU_WM"):
        rows = predictions[predictions["model"] == name]
        got = {
            key: (sorted(r["sample_key"]), int(r["n_train"].iloc[0]))
            for key, r in rows.groupby(["protocol", "cohort", "trial"])
        }
        assert got == expected  # every fold's test rows, only those (no training row is scored)
        np.testing.assert_array_equal(
            rows["y_true"].to_numpy(), labels.loc[rows["sample_key"]].to_numpy()
        )
    # The same rows as the models' amu_holdout predictions.
    models, _ = fit_model(inputs, {**tiny_params, "protocols": ["amu_holdout"]}, "logreg")
    key = ["protocol", "cohort", "trial", "sample_key", "y_true", "n_train"]
    pd.testing.assert_frame_equal(
        predictions.loc[predictions["model"] == "sig_AMU_UP", key].reset_index(drop=True),
        models[key].reset_index(drop=True),
    )
    # A0-A1 are higher in responders: AMU_UP ranks them first, AMU_WM (resistance, -A0) too.
    from icb_kedro.evaluation.summary import fold_metrics  # noqa: PLC0415

    metrics = fold_metrics(predictions)
    assert (metrics.groupby("model")["auroc"].mean() > 0.7).all()

    # Leakage: a sentinel in one fold's test rows changes neither the location/scale nor the
    # threshold fitted on its training rows (only the poisoned row's own probability moves).
    # Only that fold (n_trials 1): another split may hold the same sample among its training rows.
    fold = folds[0]
    first = {**tiny_params, "amu_holdout": {**tiny_params["amu_holdout"], "n_trials": 1}}
    seen = []
    real = signature_predictions.fit_score_scale
    monkeypatch.setattr(
        signature_predictions,
        "fit_score_scale",
        lambda values: seen.append(np.asarray(values)) or real(values),
    )
    moved = scores.copy()
    poisoned = fold.test_keys[0]
    moved.loc[moved["sample_key"] == poisoned, "sig_AMU_UP"] = SENTINEL
    again = nodes.predict_amu_signatures(moved, inputs["amu_holdout_folds"], first)
    assert len(seen) == 2 and all(
        len(v) == len(fold.train_keys) and SENTINEL not in v for v in seen
    )  # 2 signatures
    pick = lambda t: t[(t.model == "sig_AMU_UP") & (t.trial == fold.trial)].set_index("sample_key")  # noqa: E731
    before, after = pick(predictions), pick(again)
    assert after["threshold"].iloc[0] == before["threshold"].iloc[0]
    others = [k for k in fold.test_keys if k != poisoned]
    np.testing.assert_array_equal(
        after.loc[others, "y_prob"], before.loc[others, "y_prob"]
    )  # same location/scale
    assert after.loc[poisoned, "y_prob"] > 0.99
    # ... whereas the training rows do set them.
    moved = scores.copy()
    moved.loc[moved["sample_key"].isin(fold.train_keys[:5]), "sig_AMU_UP"] = SENTINEL
    assert not np.allclose(
        pick(nodes.predict_amu_signatures(moved, inputs["amu_holdout_folds"], first))["y_prob"],
        before["y_prob"],
    )

    # amu_holdout not configured: nothing; and the summary names the signatures scored on
    # the AMU matrix.
    assert nodes.predict_amu_signatures(
        scores, inputs["amu_holdout_folds"], {**tiny_params, "protocols": ["loco"]}
    ).empty
    evaluation = tiny_params["evaluation"]
    text = nodes.write_summary_markdown(
        nodes.summarize_overall(predictions, evaluation),
        nodes.summarize_cohorts(predictions, evaluation),
        nodes.compare_models(predictions, evaluation),
        nodes.check_signature_coverage(
            signatures, inputs["gene_panels"], tiny_params["signatures"]
        ),
        pd.DataFrame(columns=list(protocol_runs.SEARCH_LOG_COLUMNS)),
        tiny_params,
        coverage,
    )
    assert "Signatures on the AMU matrix" in text and "2 of 7 scored (AMU_UP, AMU_WM)" in text
    assert "- AMU_UP (AMU matrix): 3/3 genes present (> 80%)" in text


def test_signatures_failing_coverage_on_the_amu_genes_are_reported_and_give_no_predictions(
    synthetic_inputs, tiny_params
):
    inputs = synthetic_inputs
    # COX_IS over AMU genes: full coverage, but a ratio of mean log ratios is undefined.
    files = _amu_signature_files(
        **{
            "COX_IS.csv": "gene;coef\nA5;1\nA6;1\nA0;-1\nA1;-1\n",
            "AMU_UP.csv": "gene\nA0\nA1\nNOPE\n",
        }
    )
    signatures = nodes.parse_signatures(files)
    params = {
        **tiny_params,
        "signatures": {**tiny_params["signatures"], "include_below_coverage": ["AMU_UP"]},
    }
    coverage = nodes.check_amu_signature_coverage(
        signatures, inputs["amu_matrix"], params["signatures"]
    ).set_index("signature")
    assert (
        coverage.loc["UP", "status"] == "failed"
        and coverage.loc["UP", "reason"] == "coverage 0% <= 80%: 0/3 genes present"
    )
    assert coverage.loc["UP", "missing_genes"] == "G0,G1,G2"
    # 2/3 = 67%: fails, and the cohort panel's include_below_coverage does not apply on
    # the AMU matrix.
    assert (
        coverage.loc["AMU_UP", "status"] == "failed"
        and "coverage 67% <= 80%: 2/3 genes present" in coverage.loc["AMU_UP", "reason"]
    )
    assert (
        coverage.loc["COX_IS", "status"] == "failed" and coverage.loc["COX_IS", "coverage"] == 1.0
    )
    assert "constituent ratios" in coverage.loc["COX_IS", "reason"]
    assert coverage.loc["AMU_WM", "status"] == "scored"

    # The toy signatures alone: none passes on the AMU genes -> no score column, empty predictions.
    plain = nodes.parse_signatures(_amu_signature_files())
    plain = plain[~plain["signature"].str.startswith("AMU_")]
    none = nodes.check_amu_signature_coverage(
        plain, inputs["amu_matrix"], tiny_params["signatures"]
    )
    assert (none["status"] == "failed").all() and none["reason"].str.len().gt(0).all()
    scores = nodes.score_amu_signatures(inputs["amu_matrix"], plain, none, tiny_params)
    assert list(scores.columns) == ["sample_key", "cohort", "label"] and len(scores) == len(
        inputs["amu_matrix"]
    )
    empty = nodes.predict_amu_signatures(scores, inputs["amu_holdout_folds"], tiny_params)
    assert empty.empty and list(empty.columns) == list(PREDICTION_COLUMNS)
    logreg, _ = fit_model(inputs, {**tiny_params, "protocols": ["amu_holdout"]}, "logreg")
    assert len(nodes.combine_predictions(logreg, empty)) == len(logreg)
