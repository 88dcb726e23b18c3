"""Nodes of the baselines pipeline on small synthetic frames (plain function calls)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import iter_amu_holdout_folds, iter_protocol_folds
from icb_kedro.models.baselines import deployment, fold_tables, protocol_runs
from icb_kedro.panels import select_panel_features
from icb_kedro.pipelines.baselines import nodes
from icb_kedro.pipelines.baselines.config import BaselinesConfig
from icb_kedro.schema import PREDICTION_COLUMNS, gene_columns

from .conftest import SENTINEL, fit_model, panel_features


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
    predictions, log = fit_model(synthetic_inputs, tiny_params, "logreg")
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
    xgb, _ = fit_model(synthetic_inputs, tiny_params, "xgboost")
    assert set(xgb["protocol"]) == {"amu_holdout"} and set(xgb["cohort"]) == {"AMU"}
    mlp, mlp_log = fit_model(synthetic_inputs, tiny_params, "mlp")
    assert mlp.empty and list(mlp.columns) == list(PREDICTION_COLUMNS) and mlp_log.empty
    with pytest.raises(ValueError, match="has no entry 'knn'"):
        fit_model(synthetic_inputs, tiny_params, "knn")


def test_same_params_same_predictions_whatever_the_number_of_processes(
    synthetic_inputs, tiny_params
):
    tiny_params["protocols"] = ["amu_holdout"]
    first, _ = fit_model(synthetic_inputs, tiny_params, "rf")
    tiny_params["n_jobs"] = 2
    again, _ = fit_model(synthetic_inputs, tiny_params, "rf")
    pd.testing.assert_frame_equal(first, again)


def test_sentinel_in_a_folds_test_rows_leaves_its_fitted_objects_unchanged(
    synthetic_inputs, tiny_params
):
    """Node-level leakage test: the search, the threshold and n_train of a fold
    ignore its test rows."""
    tiny_params["protocols"] = ["transfer"]
    fold = next(iter_protocol_folds(synthetic_inputs["lodocv_folds"], ["transfer"], 1))
    features = panel_features(synthetic_inputs, tiny_params)
    poisoned = features.copy()
    genes = gene_columns(poisoned)
    poisoned.loc[poisoned["sample_key"].isin(fold.test_keys), genes] = SENTINEL
    key = ["protocol", "cohort", "trial"]
    clean_pred, clean_log = fit_model(synthetic_inputs, tiny_params, "logreg", features)
    bad_pred, bad_log = fit_model(synthetic_inputs, tiny_params, "logreg", poisoned)
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
    models, _ = fit_model(inputs, tiny_params, "logreg")
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
    logreg, _ = fit_model(synthetic_inputs, tiny_params, "logreg")
    combined = nodes.combine_predictions(logreg.iloc[::-1], fold_tables.stack_predictions([]))
    assert combined["model"].tolist() == sorted(combined["model"]) and len(combined) == len(logreg)
    with pytest.raises(ValueError, match="no baseline produced predictions"):
        nodes.combine_predictions(fold_tables.stack_predictions([]))
    with pytest.raises(ValueError, match="twice"):
        nodes.combine_predictions(logreg, logreg)


def test_summary_markdown_lists_signature_failures(synthetic_inputs, tiny_params):
    inputs = synthetic_inputs
    signatures = nodes.parse_signatures(inputs["baselines_signature_files"])
    coverage = nodes.check_signature_coverage(
        signatures, inputs["gene_panels"], tiny_params["signatures"]
    )
    predictions, log = fit_model(inputs, tiny_params, "logreg")
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
    predictions, log = fit_model(synthetic_inputs, tiny_params, "logreg")
    per_fold = {
        k: v
        for k, v in fit_model(
            synthetic_inputs, {**tiny_params, "transfer_search": "fold"}, "logreg"
        )[1].groupby("protocol")
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
    features = panel_features(synthetic_inputs, tiny_params)
    poisoned = features.copy()
    poisoned.loc[poisoned["cohort"] == held_out, gene_columns(poisoned)] = SENTINEL
    _, bad_log = fit_model(synthetic_inputs, tiny_params, "logreg", poisoned)
    this = (log["cohort"] == held_out) & (log["protocol"] == "transfer")
    assert (
        log.loc[this, "best_params"].to_numpy() == bad_log.loc[this, "best_params"].to_numpy()
    ).all()
    with pytest.raises(ValueError, match=r"params:baselines: 'transfer_search': Input should be"):
        fit_model(synthetic_inputs, {**tiny_params, "transfer_search": "all"}, "logreg")


def test_amu_matrix_baselines_see_every_gene_unless_told_otherwise(
    synthetic_inputs, tiny_params, monkeypatch
):
    """Spec 1.7: on the AMU matrix the baselines get the same 160-D vector as AMU, so the
    cohort setting's baselines.n_features (ANOVA selection) does not apply there."""
    seen = {}
    real = protocol_runs.run_model_folds

    def spy(spec, table, folds, settings, **kwargs):
        seen[kwargs.get("smote", False)] = settings.n_features
        return real(spec, table, folds, settings, **kwargs)

    monkeypatch.setattr(protocol_runs, "run_model_folds", spy)
    tiny_params["protocols"] = ["loco", "amu_holdout"]
    tiny_params["n_features"] = 2
    fit_model(synthetic_inputs, tiny_params, "logreg")
    assert seen == {False: 2, True: None}  # loco selects 2 genes; amu_holdout (SMOTE) uses all
    tiny_params["amu_holdout"]["n_features"] = 3
    fit_model(synthetic_inputs, tiny_params, "logreg")
    assert seen[True] == 3


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
    assert deployment.choose_deployment_family(table, parsed(tiny_params)) == (
        "svm",
        pytest.approx(0.70),
        2,
    )
    tiny_params["registry"] = {"model": "logreg"}
    assert deployment.choose_deployment_family(table, parsed(tiny_params))[0] == "logreg"
    tiny_params["registry"] = {"model": "mlp"}
    with pytest.raises(ValueError, match="'mlp' has no 'loco' results"):
        deployment.choose_deployment_family(table, parsed(tiny_params))
    tiny_params["registry"] = {"selection_protocol": "transfer"}
    with pytest.raises(ValueError, match="no 'transfer' results"):
        deployment.choose_deployment_family(table, parsed(tiny_params))


def parsed(params: dict) -> BaselinesConfig:
    return BaselinesConfig.of(params, "params:baselines")


def test_the_deployed_baseline_scores_a_whole_cohort_and_refuses_what_it_cannot_score(
    synthetic_inputs, tiny_params
):
    from icb_kedro.models.portable import cohort_zscore

    features = panel_features(synthetic_inputs, tiny_params)
    model = nodes.fit_deployment_baseline(
        features, _cohort_table({"logreg": 0.7, "rf": 0.6}), tiny_params
    )
    labelled = features["label"].notna()
    assert model.metadata["family"] == "logreg" and model.metadata["n_train"] == int(labelled.sum())
    assert model.metadata[
        "training_cohorts"
    ] == "CohortA, CohortB, CohortC" and model.genes == gene_columns(features)
    # The model takes log2(TPM+1) and z-scores it per cohort, which a shift leaves unchanged:
    # the synthetic (standardized) features, shifted into the scale's range.
    cohort = features[features["cohort"] == "CohortB"].set_index("sample_key")[model.genes]
    cohort = cohort - cohort.min().min() + 1.0
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
