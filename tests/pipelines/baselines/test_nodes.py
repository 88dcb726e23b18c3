"""Nodes of the baselines pipeline on small synthetic frames (plain function calls)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import iter_amu_holdout_folds, iter_protocol_folds
from icb_kedro.panels import select_panel_features
from icb_kedro.pipelines.baselines import nodes
from icb_kedro.schema import PREDICTION_COLUMNS, gene_columns

SENTINEL = 1e6


def _features(inputs: dict, params: dict) -> pd.DataFrame:
    return select_panel_features(
        inputs["expression_standardized"], inputs["gene_panels"], params["panel"]
    )


def _fit(inputs: dict, params: dict, model: str, features: pd.DataFrame | None = None):
    features = _features(inputs, params) if features is None else features
    return nodes.fit_predict_model(
        model,
        features,
        inputs["lodocv_folds"],
        inputs["amu_matrix"],
        inputs["amu_holdout_folds"],
        params,
    )


def test_select_panel_features_keeps_meta_and_panel_genes_in_order(synthetic_inputs):
    panels = pd.DataFrame({"panel": ["small", "small"], "gene": ["G3", "G1"]})
    table = select_panel_features(synthetic_inputs["expression_standardized"], panels, "small")
    assert list(table.columns) == ["sample_key", "cohort", "label", "G3", "G1"]
    with pytest.raises(ValueError, match="empty or unknown"):
        select_panel_features(synthetic_inputs["expression_standardized"], panels, "nope")
    with pytest.raises(ValueError, match="not expression columns"):
        select_panel_features(
            synthetic_inputs["expression_standardized"],
            pd.DataFrame({"panel": ["p"], "gene": ["XYZ"]}),
            "p",
        )


def test_model_is_scored_on_exactly_the_protocols_test_rows(synthetic_inputs, tiny_params):
    predictions, log = _fit(synthetic_inputs, tiny_params, "logreg")
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    expected = {
        (f.protocol, f.held_out, f.trial): (sorted(f.test_keys), len(f.train_keys))
        for f in [
            *iter_protocol_folds(
                synthetic_inputs["lodocv_folds"], ["transfer", "loco", "within"], 1
            ),
            *iter_amu_holdout_folds(synthetic_inputs["amu_holdout_folds"], 2),
        ]
    }
    got = {
        key: (sorted(rows["sample_key"]), int(rows["n_train"].iloc[0]))
        for key, rows in predictions.groupby(["protocol", "cohort", "trial"])
    }
    assert got == expected
    assert len(log) == len(expected) and set(log["threshold_source"]) == {"oof"}
    assert log["best_params"].str.contains('"C"').all()
    # The threshold column is the one logged per fold (fitted on training rows).
    merged = (
        predictions.groupby(["protocol", "cohort", "trial"])["threshold"]
        .first()
        .reset_index()
        .merge(log, on=["protocol", "cohort", "trial"])
    )
    np.testing.assert_allclose(merged["threshold_x"], merged["threshold_y"])


def test_protocol_restriction_and_disabled_models(synthetic_inputs, tiny_params):
    xgb, _ = _fit(synthetic_inputs, tiny_params, "xgboost")
    assert set(xgb["protocol"]) == {"amu_holdout"} and set(xgb["cohort"]) == {"AMU"}
    mlp, mlp_log = _fit(synthetic_inputs, tiny_params, "mlp")
    assert mlp.empty and list(mlp.columns) == list(PREDICTION_COLUMNS) and mlp_log.empty
    with pytest.raises(ValueError, match="has no entry 'knn'"):
        _fit(synthetic_inputs, tiny_params, "knn")


def test_same_params_same_predictions_whatever_the_number_of_processes(
    synthetic_inputs, tiny_params
):
    tiny_params["protocols"] = ["amu_holdout"]
    first, _ = _fit(synthetic_inputs, tiny_params, "rf")
    tiny_params["n_jobs"] = 2
    again, _ = _fit(synthetic_inputs, tiny_params, "rf")
    pd.testing.assert_frame_equal(first, again)


def test_sentinel_in_a_folds_test_rows_leaves_its_fitted_objects_unchanged(
    synthetic_inputs, tiny_params
):
    """Node-level leakage test: the search, the threshold and n_train of a fold
    ignore its test rows."""
    tiny_params["protocols"] = ["transfer"]
    fold = next(iter_protocol_folds(synthetic_inputs["lodocv_folds"], ["transfer"], 1))
    features = _features(synthetic_inputs, tiny_params)
    poisoned = features.copy()
    genes = gene_columns(poisoned)
    poisoned.loc[poisoned["sample_key"].isin(fold.test_keys), genes] = SENTINEL
    key = ["protocol", "cohort", "trial"]
    clean_pred, clean_log = _fit(synthetic_inputs, tiny_params, "logreg", features)
    bad_pred, bad_log = _fit(synthetic_inputs, tiny_params, "logreg", poisoned)
    this = (clean_log["cohort"] == fold.held_out) & (clean_log["trial"] == fold.trial)
    columns = ["best_params", "inner_auroc", "threshold", "n_train", "n_inner_splits"]
    pd.testing.assert_frame_equal(
        clean_log.loc[this, key + columns], bad_log.loc[this, key + columns]
    )
    rows = clean_pred["cohort"] == fold.held_out
    assert not np.allclose(
        clean_pred.loc[rows, "y_prob"], bad_pred.loc[rows, "y_prob"]
    )  # test rows did change


def test_signature_predictions_use_the_same_rows_and_training_thresholds(
    synthetic_inputs, tiny_params
):
    inputs = synthetic_inputs
    signatures = nodes.parse_signatures(inputs["baselines_signature_files"])
    coverage = nodes.check_signature_coverage(
        signatures, inputs["gene_panels"], tiny_params["signatures"]
    )
    assert coverage.set_index("signature")["status"].to_dict() == {
        "COX_IS": "scored",
        "DOWN": "scored",
        "SPARSE": "failed",
        "UP": "scored",
        "WM": "scored",
    }
    scores = nodes.compute_signature_scores(
        inputs["harmonized_expression"],
        inputs["expression_standardized"],
        inputs["gene_panels"],
        signatures,
        coverage,
        tiny_params["signatures"],
    )
    assert (
        len(scores) == len(inputs["harmonized_expression"])
        and scores.filter(like="sig_").notna().all().all()
    )
    predictions = nodes.predict_signatures(scores, inputs["lodocv_folds"], tiny_params)
    models, _ = _fit(inputs, tiny_params, "logreg")
    lodocv = models[models["protocol"] != "amu_holdout"]
    for name, rows in predictions.groupby("model"):
        assert name.startswith("sig_")
        pd.testing.assert_frame_equal(
            rows[["protocol", "cohort", "trial", "sample_key", "y_true", "n_train"]].reset_index(
                drop=True
            ),
            lodocv[["protocol", "cohort", "trial", "sample_key", "y_true", "n_train"]].reset_index(
                drop=True
            ),
        )
    # The informative genes G0-G2 make UP rank responders first (AUROC well above 0.5 in loco).
    from icb_kedro.evaluation.summary import fold_metrics

    metrics = fold_metrics(predictions)
    assert metrics[(metrics.model == "sig_UP") & (metrics.protocol == "loco")]["auroc"].mean() > 0.7

    # Changing a fold's TEST scores changes neither its threshold nor its training mapping.
    fold = next(iter_protocol_folds(inputs["lodocv_folds"], ["within"], 1))
    moved = scores.copy()
    moved.loc[moved["sample_key"].isin(fold.test_keys), "sig_UP"] = SENTINEL
    again = nodes.predict_signatures(
        moved, inputs["lodocv_folds"], {**tiny_params, "protocols": ["within"]}
    )

    def pick(t):
        return t[
            (t.model == "sig_UP")
            & (t.protocol == "within")
            & (t.cohort == fold.held_out)
            & (t.trial == fold.trial)
        ]

    assert pick(again)["threshold"].iloc[0] == pick(predictions)["threshold"].iloc[0]
    assert (pick(again)["y_prob"] > 0.99).all()


def test_combine_predictions_validates_and_sorts(synthetic_inputs, tiny_params):
    logreg, _ = _fit(synthetic_inputs, tiny_params, "logreg")
    combined = nodes.combine_predictions(logreg.iloc[::-1], nodes._predictions_frame([]))
    assert combined["model"].tolist() == sorted(combined["model"]) and len(combined) == len(logreg)
    with pytest.raises(ValueError, match="no baseline produced predictions"):
        nodes.combine_predictions(nodes._predictions_frame([]))
    with pytest.raises(ValueError, match="twice"):
        nodes.combine_predictions(logreg, logreg)


def test_summary_markdown_lists_signature_failures(synthetic_inputs, tiny_params):
    inputs = synthetic_inputs
    signatures = nodes.parse_signatures(inputs["baselines_signature_files"])
    coverage = nodes.check_signature_coverage(
        signatures, inputs["gene_panels"], tiny_params["signatures"]
    )
    predictions, log = _fit(inputs, tiny_params, "logreg")
    evaluation = tiny_params["evaluation"]
    text = nodes.write_summary_markdown(
        nodes.summarize_overall(predictions, evaluation),
        nodes.summarize_cohorts(predictions, evaluation),
        nodes.compare_models(predictions, evaluation),
        coverage,
        log,
        tiny_params,
    )
    assert "SPARSE: coverage 33% <= 80%: 1/3 genes present" in text
    assert (
        "the 8 genes with the largest ANOVA F" in text
        and "ln(ratio + 1e-06), all genes, SMOTE inside training rows" in text
    )
    assert "Brier score is not meaningful" in text and "### Protocol `transfer`" in text


def test_transfer_search_on_source_rows_is_shared_and_never_sees_the_held_out_cohort(
    synthetic_inputs, tiny_params
):
    tiny_params.update(transfer_search="source", protocols=["transfer", "loco"], n_repeats=1)
    predictions, log = _fit(synthetic_inputs, tiny_params, "logreg")
    per_fold = {
        k: v
        for k, v in _fit(synthetic_inputs, {**tiny_params, "transfer_search": "fold"}, "logreg")[
            1
        ].groupby("protocol")
    }
    for held_out, rows in log.groupby("cohort"):
        loco = rows[rows.protocol == "loco"].iloc[0]
        transfer = rows[rows.protocol == "transfer"]
        assert (
            len(transfer) == 3 and (transfer["best_params"] == loco["best_params"]).all()
        )  # 3-fold, 1 repeat
        assert (transfer["search_rows"] == "source").all() and loco["search_rows"] == "fold"
        assert (transfer["inner_auroc"] == loco["inner_auroc"]).all()
    # loco with the shared search == loco with its own search (same rows, same seed).
    own = per_fold["loco"].set_index("cohort")
    shared = log[log.protocol == "loco"].set_index("cohort")
    pd.testing.assert_series_equal(own["best_params"], shared["best_params"])
    np.testing.assert_allclose(own["threshold"], shared["threshold"])

    # Poisoning every sample of one held-out cohort leaves the search shared by its folds unchanged.
    held_out = sorted(log["cohort"].unique())[0]
    features = _features(synthetic_inputs, tiny_params)
    poisoned = features.copy()
    poisoned.loc[poisoned["cohort"] == held_out, gene_columns(poisoned)] = SENTINEL
    _, bad_log = _fit(synthetic_inputs, tiny_params, "logreg", poisoned)
    this = (log["cohort"] == held_out) & (log["protocol"] == "transfer")
    assert (
        log.loc[this, "best_params"].to_numpy() == bad_log.loc[this, "best_params"].to_numpy()
    ).all()
    with pytest.raises(ValueError, match="transfer_search must be one of"):
        _fit(synthetic_inputs, {**tiny_params, "transfer_search": "all"}, "logreg")


def test_amu_matrix_baselines_see_every_gene_unless_told_otherwise(
    synthetic_inputs, tiny_params, monkeypatch
):
    """Spec 1.7: on the AMU matrix the baselines get the same 160-D vector as AMU, so the
    cohort setting's baselines.n_features (ANOVA selection) does not apply there."""
    seen = {}
    real = nodes.run_model_folds

    def spy(spec, table, folds, settings, **kwargs):
        seen[kwargs.get("smote", False)] = settings["n_features"]
        return real(spec, table, folds, settings, **kwargs)

    monkeypatch.setattr(nodes, "run_model_folds", spy)
    tiny_params["protocols"] = ["loco", "amu_holdout"]
    tiny_params["n_features"] = 2
    _fit(synthetic_inputs, tiny_params, "logreg")
    assert seen == {False: 2, True: None}  # loco selects 2 genes; amu_holdout (SMOTE) uses all
    tiny_params["amu_holdout"]["n_features"] = 3
    _fit(synthetic_inputs, tiny_params, "logreg")
    assert seen[True] == 3


# ----------------------------------------------------------- signatures on the AMU matrix (issue 3)


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
    models, _ = _fit(inputs, {**tiny_params, "protocols": ["amu_holdout"]}, "logreg")
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
    real = nodes.fit_score_scale
    monkeypatch.setattr(
        nodes, "fit_score_scale", lambda values: seen.append(np.asarray(values)) or real(values)
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
        pd.DataFrame(columns=list(nodes.SEARCH_LOG_COLUMNS)),
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
    logreg, _ = _fit(inputs, {**tiny_params, "protocols": ["amu_holdout"]}, "logreg")
    assert len(nodes.combine_predictions(logreg, empty)) == len(logreg)


def _cohort_table(means: dict[str, float], protocol: str = "loco") -> pd.DataFrame:
    rows = [
        {"model": m, "protocol": protocol, "cohort": c, "auroc_mean": v + d}
        for m, v in means.items()
        for c, d in (("CohortA", -0.05), ("CohortB", 0.05))
    ]
    return pd.DataFrame(rows)


def test_the_deployed_baseline_is_the_best_enabled_family_by_held_out_auroc(tiny_params):
    table = _cohort_table(
        {"logreg": 0.62, "svm": 0.70, "rf": 0.66, "adaboost": 0.90, "sig_IFNG": 0.95}
    )
    # adaboost is disabled in tiny_params and signatures are not model families: svm wins.
    assert nodes.choose_deployment_family(table, tiny_params) == ("svm", pytest.approx(0.70), 2)
    tiny_params["registry"] = {"model": "logreg"}
    assert nodes.choose_deployment_family(table, tiny_params)[0] == "logreg"
    tiny_params["registry"] = {"model": "mlp"}
    with pytest.raises(ValueError, match="'mlp' has no 'loco' results"):
        nodes.choose_deployment_family(table, tiny_params)
    tiny_params["registry"] = {"selection_protocol": "transfer"}
    with pytest.raises(ValueError, match="no 'transfer' results"):
        nodes.choose_deployment_family(table, tiny_params)


def test_the_deployed_baseline_scores_a_whole_cohort_and_refuses_what_it_cannot_score(
    synthetic_inputs, tiny_params
):
    from icb_kedro.models.portable import cohort_zscore

    features = _features(synthetic_inputs, tiny_params)
    model = nodes.fit_deployment_baseline(
        features, _cohort_table({"logreg": 0.7, "rf": 0.6}), tiny_params
    )
    labelled = features["label"].notna()
    assert model.metadata["family"] == "logreg" and model.metadata["n_train"] == int(labelled.sum())
    assert model.metadata[
        "training_cohorts"
    ] == "CohortA, CohortB, CohortC" and model.genes == gene_columns(features)
    cohort = features[features["cohort"] == "CohortB"].set_index("sample_key")[model.genes]
    scores = model.predict(None, cohort.assign(extra=1.0))
    expected = model.estimator.predict_proba(cohort_zscore(cohort).to_numpy())[:, 1]
    np.testing.assert_allclose(scores["y_prob"].to_numpy(), expected)
    assert list(scores.index) == list(cohort.index)
    assert "best mean loco AUROC" in model.registry_metadata()["selection"]
    assert model.registry_metadata()["description"].startswith(
        "logreg baseline, chosen as the best classical model"
    )
    with pytest.raises(ValueError, match=r"input lacks 1 of the model's 12 genes \(G4\)"):
        model.predict(None, cohort.drop(columns=["G4"]))
    with pytest.raises(ValueError, match="pass a whole cohort"):
        model.predict(None, cohort.head(5))
    with pytest.raises(ValueError, match="non-numeric values in genes \\['G0'\\]"):
        model.predict(None, cohort.astype(object).assign(G0="high"))
