"""Interpretation nodes on the synthetic study: the planted gene comes out on top everywhere."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from icb_kedro.interpretation import explain_baselines, explain_ic2bert, outcomes, shap_tables
from icb_kedro.pipelines.interpretation import nodes
from icb_kedro.reporting.report import assert_report_images


def _explain(study, model, setting, baselines_params, interpretation_params, search_log=None):
    return nodes.explain_baseline(
        model,
        setting,
        study["expression_standardized"],
        study["gene_panels"],
        study["lodocv_folds"],
        study["amu_matrix"],
        study["amu_holdout_folds"],
        search_log,
        baselines_params,
        interpretation_params["shap"],
    )


@pytest.mark.parametrize("model", ["svm", "xgboost"])
def test_baseline_shap_ranks_planted_gene_first(
    synthetic_study, baselines_params, interpretation_params, model
):
    cohorts = _explain(synthetic_study, model, "cohorts", baselines_params, interpretation_params)
    study = _explain(synthetic_study, model, "study", baselines_params, interpretation_params)
    # loco: one fold per held-out cohort, 8 explained test rows each, a shap and a feature
    # row per sample.
    assert len(cohorts) == 3 * 8 * 2 and set(cohorts["cohort"]) == {"CohortA", "CohortB", "CohortC"}
    assert set(cohorts["kind"]) == {"shap", "feature"} and (cohorts["protocol"] == "loco").all()
    assert len(study) == 8 * 2 and (study["protocol"] == "amu_holdout").all()
    rankings = nodes.rank_genes(cohorts, study)
    assert set(rankings["setting"]) == {"study", "cohorts"}
    for protocol, rows in rankings.groupby("protocol"):
        top = rows.sort_values("rank").iloc[0]
        assert top["gene"] == "PLANT", protocol
        assert top["direction"] > 0  # higher PLANT -> higher P(responder)
    # Test rows only: every explained sample is a test sample of its fold.
    folds = synthetic_study["lodocv_folds"]
    for cohort, rows in cohorts.groupby("cohort"):
        assert set(rows["sample_key"]) <= set(folds.loc[folds["held_out"] == cohort, "sample_key"])
        assert rows["sample_key"].str.startswith(cohort).all()
    # Same seed, same numbers.
    again = _explain(synthetic_study, model, "cohorts", baselines_params, interpretation_params)
    pd.testing.assert_frame_equal(cohorts, again)


@pytest.mark.parametrize("model", ["svm", "xgboost"])
def test_gene_selection_inside_the_pipeline_is_followed(
    synthetic_study, baselines_params, interpretation_params, model
):
    # The baselines pipeline's SelectKBest, fitted on training rows (study: amu_holdout's own
    # setting; the cohorts' n_features does not apply there, as in the baselines pipeline).
    baselines_params["amu_holdout"] = {**baselines_params["amu_holdout"], "n_features": 4}
    baselines_params["n_features"] = 2
    table = _explain(synthetic_study, model, "study", baselines_params, interpretation_params)
    shap_rows = table.loc[table["kind"] == "shap", shap_tables.shap_gene_columns(table)]
    # TreeSHAP exactly, KernelSHAP by construction (explained over the kept genes only):
    # the genes the fitted selection dropped cannot matter and get exactly 0.
    assert 1 <= (shap_rows.abs().sum() > 0).sum() <= 4
    assert nodes.rank_genes(table).sort_values("rank")["gene"].iloc[0] == "PLANT"


def test_logged_hyper_parameters_are_reused(
    synthetic_study, baselines_params, interpretation_params
):
    params = {
        **baselines_params,
        "models": {
            "svm": {"search": "grid", "grid": {"C": [0.01, 100.0]}, "params": {"kernel": "linear"}}
        },
    }
    log = pd.DataFrame(
        [
            {
                "model": "svm",
                "protocol": "loco",
                "cohort": c,
                "trial": 0,
                "best_params": '{"C": 1.0}',
            }
            for c in ("CohortA", "CohortB", "CohortC")
        ]
    )
    assert explain_baselines._logged_best_params(log, "svm", "loco", "CohortA", 0) == {"C": 1.0}
    assert explain_baselines._logged_best_params(log, "svm", "transfer", "CohortA", 0) is None
    with_log = _explain(synthetic_study, "svm", "cohorts", params, interpretation_params, log)
    fixed = _explain(
        synthetic_study, "svm", "cohorts", baselines_params, interpretation_params
    )  # C = 1.0 fixed
    pd.testing.assert_frame_equal(with_log, fixed)


def test_models_not_listed_are_skipped(synthetic_study, baselines_params, interpretation_params):
    interpretation_params["shap"]["cohorts"]["models"] = ["amu"]
    table = _explain(synthetic_study, "svm", "cohorts", baselines_params, interpretation_params)
    assert table.empty and "PLANT" in table.columns
    with pytest.raises(ValueError, match="unknown SHAP setting"):
        explain_baselines.setting_params(interpretation_params["shap"], "elsewhere")


def test_explain_rows_is_seeded_and_stratified():
    labels = pd.Series([0] * 20 + [1] * 10, index=[f"k{i}" for i in range(30)])
    chosen = shap_tables.explain_rows(labels.index, labels, 9, seed=3)
    assert chosen == shap_tables.explain_rows(labels.index, labels, 9, seed=3)
    assert len(chosen) == 9 and labels[chosen].sum() == 3
    assert shap_tables.explain_rows(labels.index[:5], labels, 9, seed=3) == sorted(labels.index[:5])


def _amu_weights(study) -> dict:
    """A small AMU network trained on the study fold's training rows (1 layer): enough epochs
    to learn the planted gene (test AUROC ~1), or SHAP would explain an untrained net."""
    from icb_kedro.evaluation.protocols import iter_amu_holdout_folds
    from icb_kedro.models.amu.features import SCALE_RATIO, amu_features
    from icb_kedro.models.amu.train import TrainConfig, fit_network

    matrix = study["amu_matrix"]
    genes = [c for c in matrix.columns if c not in ("sample_key", "label")]
    features = pd.DataFrame(
        amu_features(matrix, genes, SCALE_RATIO, 1e-6), index=matrix["sample_key"], columns=genes
    )
    fold = next(iter_amu_holdout_folds(study["amu_holdout_folds"], 1))
    y = matrix.set_index("sample_key").loc[fold.train_keys, "label"].astype(int).to_numpy()
    fitted = fit_network(
        features.loc[fold.train_keys].to_numpy(),
        y,
        model_config={"n_layers": 1},
        train_config=TrainConfig(epochs=40, learning_rate=3e-3, smote=False, num_threads=1, seed=0),
        features=genes,
    )
    return {"amu_holdout|AMU|0": {"fold": "amu_holdout|AMU|0", **asdict(fitted)}}


def test_amu_study_shap_and_embeddings(synthetic_study, interpretation_params):
    weights = _amu_weights(synthetic_study)
    amu_params = {
        "study": {"pseudo_count": 1e-6},
        "cohorts": {"expression": "harmonized_expression", "pseudo_count": 1e-6},
    }
    table = nodes.explain_amu_study(
        synthetic_study["amu_matrix"],
        synthetic_study["amu_holdout_folds"],
        weights,
        amu_params,
        interpretation_params["shap"],
    )
    genes = shap_tables.shap_gene_columns(table)
    assert len(table) == 8 * 2 and genes[0] == "PLANT" and len(genes) == 10
    assert np.isfinite(table[genes].to_numpy(float)).all()
    # The known answer: the planted gene, which alone decides response, ranks first.
    from icb_kedro.interpretation.shap_analysis import shap_gene_ranking

    shap_rows = table[table["kind"] == "shap"]
    ranking = shap_gene_ranking(shap_rows[genes].to_numpy(float), genes)
    assert ranking.iloc[0]["gene"] == "PLANT"
    none = nodes.explain_amu_study(
        synthetic_study["amu_matrix"],
        synthetic_study["amu_holdout_folds"],
        None,
        amu_params,
        interpretation_params["shap"],
    )
    assert none.empty
    # Cohort networks absent -> empty table, no error.
    assert nodes.explain_amu_cohorts(
        synthetic_study["harmonized_expression"],
        synthetic_study["expression_standardized"],
        synthetic_study["lodocv_folds"],
        amu_params,
        interpretation_params["shap"],
        None,
        None,
    ).empty

    gene_sets = pd.DataFrame({"gene_set": ["S"] * 3, "gene": ["PLANT", "G00", "G01"]})
    gene_map, pairs, summary, cosine = nodes.analyse_amu_embeddings(
        weights, None, synthetic_study["amu_matrix"], gene_sets, interpretation_params["embeddings"]
    )
    assert sorted(gene_map["gene"]) == sorted(genes) and {
        "tsne_1",
        "tsne_2",
        "cluster",
        "leaf_order",
    } <= set(gene_map.columns)
    assert len(pairs) == len(genes) * 2 and {"coexpression_r", "co_member"} <= set(pairs.columns)
    assert set(summary["statistic"]) == {"mean_abs_coexpression", "fraction_signature_comembers"}
    assert len(cosine) == len(genes) ** 2 and {"cosine_similarity", "euclidean_distance"} <= set(
        cosine.columns
    )
    assert (cosine.loc[cosine["gene"] == cosine["other"], "euclidean_distance"] == 0).all()
    # Null comparison: the same statistics of the table the network was initialised with.
    from icb_kedro.interpretation.embeddings import embedding_drift, initial_embedding
    from icb_kedro.models.amu.train import FittedNetwork

    assert list(summary["embedding"]) == ["trained", "trained", "initial", "initial"]
    assert summary.groupby("embedding")["statistic"].apply(set).map(len).eq(2).all()
    fitted = FittedNetwork(**{k: v for k, v in weights["amu_holdout|AMU|0"].items() if k != "fold"})
    drift = embedding_drift(
        pd.DataFrame(fitted.gene_embeddings(), index=genes), initial_embedding(fitted)
    )
    trained_rows, initial_rows = (
        summary[summary["embedding"] == "trained"],
        summary[summary["embedding"] == "initial"],
    )
    assert (
        drift > 0
        and np.allclose(trained_rows["relative_drift"], drift)
        and (initial_rows["relative_drift"] == 0).all()
    )
    assert (
        trained_rows["neighbour_pairs_shared"].between(0, 1).all()
        and (initial_rows["neighbour_pairs_shared"] == 1).all()
    )
    # ... stated in the report's embedding section.
    from icb_kedro.reporting.report import render_report
    from icb_kedro.reporting.sections_genes import section_embeddings
    from icb_kedro.reporting.study_inputs import StudyInputs

    section = section_embeddings(
        StudyInputs(
            embedding_map=gene_map,
            embedding_pairs=pairs,
            embedding_summary=summary,
            embedding_cosine=cosine,
        )
    )
    html = render_report("t", [section])
    assert "Drift from initialisation" in html and f"= {drift:.3g} from the table" in html
    assert "at p &lt; 0.05" in html and "(p = " in html
    empty = nodes.analyse_amu_embeddings(
        None, None, synthetic_study["amu_matrix"], gene_sets, interpretation_params["embeddings"]
    )
    assert all(frame.empty for frame in empty)
    # The exported embedding table of the final model is the fallback (no seed: no initial rows).
    exported = pd.DataFrame(
        np.random.default_rng(0).normal(size=(10, 4)), columns=[f"dim_{i}" for i in range(4)]
    ).assign(gene=genes)
    gene_map, _, summary, _ = nodes.analyse_amu_embeddings(
        None,
        exported,
        synthetic_study["amu_matrix"],
        gene_sets,
        interpretation_params["embeddings"],
    )
    assert len(gene_map) == 10
    assert set(summary["embedding"]) == {"trained"} and summary["relative_drift"].isna().all()
    html = render_report(
        "t", [section_embeddings(StudyInputs(embedding_map=gene_map, embedding_summary=summary))]
    )
    assert "<strong>Drift from initialisation</strong>: not measured" in html


def test_ic2bert_importance_from_a_bundle(synthetic_study, interpretation_params):
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle
    from icb_kedro.models.ic2bert.config import IC2BertConfig
    from icb_kedro.models.ic2bert.tokenizer import fit_quantile_bins
    from icb_kedro.models.ic2bert.weights import init_params

    standardized = synthetic_study["expression_standardized"]
    genes = ["PLANT", "G00", "G01", "G02", "G03", "G04"]
    folds = synthetic_study["lodocv_folds"]
    bundles = []
    for cohort in ("CohortA", "CohortB"):
        train_keys = folds[
            (folds["held_out"] == cohort)
            & (folds["trial"] == 0)
            & folds["role"].isin(["source", "target_train"])
        ]["sample_key"]
        bins = fit_quantile_bins(
            standardized.set_index("sample_key").loc[train_keys], genes, n_bins=4
        )
        config = IC2BertConfig(
            n_genes=len(genes), n_bins=4, d_model=8, gene_dim=4, n_layers=1, n_heads=2, ffn_dim=8
        )
        bundle = ModelBundle(
            config,
            init_params(config, seed=0),
            bins,
            {"held_out": cohort, "protocol": "transfer", "trial": 0},
        )
        bundles.append(bundle.to_dict())
    importance, shap_table = nodes.explain_ic2bert(
        synthetic_study["harmonized_expression"],
        standardized,
        folds,
        interpretation_params["ic2bert"],
        interpretation_params["shap"],
        *bundles,
        None,  # None: the third cohort's model was not produced
    )
    assert sorted(importance["held_out"].unique()) == ["CohortA", "CohortB"]
    for _, rows in importance.groupby("held_out"):
        assert rows["attention"].sum() == pytest.approx(1.0, abs=1e-6)
        assert (
            rows["permutation"].abs().sum() == pytest.approx(1.0, abs=1e-6)
            or (rows["permutation"] == 0).all()
        )
        np.testing.assert_allclose(
            rows["combined"], 0.4 * rows["attention"] + 0.6 * rows["permutation"]
        )
        assert sorted(rows["rank"]) == list(range(1, len(genes) + 1))
    assert set(shap_table["model"]) == {"ic2bert"} and set(
        shap_tables.shap_gene_columns(shap_table)
    ) == set(genes)
    assert (
        shap_table.groupby("cohort").size().max() == 4 * 2
    )  # per_model.ic2bert.max_explain_rows rows x (shap, feature)
    merged = explain_baselines.setting_params(interpretation_params["shap"], "cohorts", "ic2bert")
    assert merged["nsamples"] == 20 and merged["protocol"] == "loco" and "per_model" not in merged
    frequency = nodes.ic2bert_top_k_frequency(importance, interpretation_params["ic2bert"])
    assert {"top10", "top5", "top3", "top1"} <= set(frequency.columns)
    assert frequency["top1"].sum() == 2 and (frequency["n_groups"] == 2).all()
    empty, empty_shap = nodes.explain_ic2bert(
        synthetic_study["harmonized_expression"],
        standardized,
        folds,
        interpretation_params["ic2bert"],
        interpretation_params["shap"],
        None,
    )
    assert empty.empty and empty_shap.empty
    with pytest.raises(ValueError, match="two IC2Bert bundles"):
        explain_ic2bert.ic2bert_fold_bundles([bundles[0], bundles[0]])


def test_rankings_overlap_enrichment_and_survival(
    synthetic_study, baselines_params, interpretation_params, signature_files
):
    tables = [
        _explain(synthetic_study, m, "cohorts", baselines_params, interpretation_params)
        for m in ("svm", "xgboost")
    ]
    constant = tables[0].copy()
    constant.loc[constant["kind"] == "shap", shap_tables.shap_gene_columns(constant)] = 0.0
    constant["model"] = "constant_model"
    rankings = nodes.rank_genes(*tables, None, shap_tables.empty_shap_table(), constant)
    assert "constant_model" not in set(
        rankings["model"]
    )  # all-zero SHAP: no ranking, no fake "top genes"
    overlap = nodes.top_gene_overlap(rankings, interpretation_params["rankings"])
    top1 = overlap[(overlap["k"] == 1)]
    assert (
        top1["gene"].tolist() == ["PLANT"]
        and top1["in_all"].all()
        and (top1["n_models_compared"] == 2).all()
    )

    gene_sets = nodes.parse_signature_sets(
        {name: (lambda text=text: text) for name, text in signature_files.items()}
    )
    assert sorted(gene_sets["gene_set"].unique()) == ["IPS_genes", "NOISE", "PLANTED"]
    enrichment = nodes.enrich_top_genes(rankings, gene_sets, interpretation_params["enrichment"])
    assert set(enrichment["query"]) == {"svm", "xgboost", "union"}
    assert (enrichment["background_size"] == 16).all()  # the models' panel (common), not the genome

    cox = nodes.cox_top_genes(
        rankings,
        synthetic_study["harmonized_expression"],
        synthetic_study["clinical_table"],
        interpretation_params["survival"],
    )
    plant = cox[(cox["gene"] == "PLANT") & (cox["endpoint"] == "os")].iloc[0]
    assert plant["hr"] < 0.7 and plant["ci_high"] < 1.0  # high PLANT = lower hazard, as planted
    assert plant["models"] == "cohorts:svm,cohorts:xgboost" and plant["n_cohorts"] == 3
    # A top gene that the cohorts did not measure is listed with a note, not dropped.
    extra = pd.concat(
        [
            rankings,
            pd.DataFrame(
                [
                    {
                        "setting": "study",
                        "protocol": "amu_holdout",
                        "model": "amu",
                        "gene": "NOT_MEASURED",
                        "rank": 1,
                    }
                ]
            ),
        ]
    )
    noted = nodes.cox_top_genes(
        extra,
        synthetic_study["harmonized_expression"],
        synthetic_study["clinical_table"],
        interpretation_params["survival"],
    )
    assert (
        noted.loc[noted["gene"] == "NOT_MEASURED", "note"] == "gene not measured in the cohorts"
    ).all()


def _predictions(study) -> pd.DataFrame:
    from icb_kedro.evaluation.protocols import iter_protocol_folds

    expression = study["expression_standardized"].set_index("sample_key")
    rows = []
    for fold in iter_protocol_folds(study["lodocv_folds"], ["loco"]):
        plant = expression.loc[fold.test_keys, "PLANT"]
        rows.append(
            pd.DataFrame(
                {
                    "model": "oracle",
                    "protocol": "loco",
                    "cohort": fold.held_out,
                    "repeat": fold.repeat,
                    "trial": fold.trial,
                    "sample_key": fold.test_keys,
                    "y_true": expression.loc[fold.test_keys, "label"].astype(int).to_numpy(),
                    "y_prob": 1 / (1 + np.exp(-plant.to_numpy())),
                    "n_train": len(fold.train_keys),
                    "threshold": 0.5,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def _coverage(table: pd.DataFrame) -> pd.DataFrame:
    """``panel_coverage`` of a harmonized table whose every cohort measures every gene."""
    from icb_kedro.schema import gene_columns

    n = len(gene_columns(table))
    return pd.DataFrame(
        [
            {
                "panel": "common",
                "cohort": c,
                "n_requested": n,
                "n_panel": n,
                "n_present": n,
                "n_missing": 0,
                "missing_genes": "",
            }
            for c in sorted(table["cohort"].unique())
        ]
    )


def test_report_refuses_a_source_it_does_not_know(interpretation_params):
    """The report node takes one mapping of sources: a misspelt name fails loudly, naming it;
    ``predictions_<model>`` is any scored model's table (a plug-in's too)."""
    from icb_kedro.reporting.study import ReportSources

    with pytest.raises(ValueError, match=r"unknown report input\(s\) \['rankingz'\]"):
        nodes.build_report(interpretation_params, rankingz=pd.DataFrame())
    sources = ReportSources.from_mapping({"predictions_toy": None, "predictions_amu": None})
    assert sources.model_predictions == {"toy": None, "amu": None}


def test_km_and_report_with_missing_models(synthetic_study, interpretation_params):
    predictions = _predictions(synthetic_study)
    km = nodes.km_summary(
        synthetic_study["clinical_table"],
        interpretation_params["survival"],
        None,
        predictions,
        None,
        None,
    )
    assert set(km["endpoint"]) == {"os", "pfs"} and (km["model"] == "oracle").all()
    assert (km["hr"] < 1).all() and km.loc[km["endpoint"] == "os", "logrank_p"].iloc[0] < 0.05
    assert outcomes.choose_predictions(None, {"a": None}) is None

    empty = pd.DataFrame()
    study = synthetic_study
    no_shap = shap_tables.empty_shap_table()
    html, figures = nodes.build_report(
        interpretation_params,
        cohort_summary=study["cohort_summary"],
        panel_coverage=_coverage(study["harmonized_expression"]),
        harmonized_expression=study["harmonized_expression"],
        expression_standardized=study["expression_standardized"],
        expression_combat=study["expression_combat"],
        clinical_table=study["clinical_table"],
        predictions_baselines=predictions,  # the other model pipelines: not run (None)
        predictions_amu=None,
        predictions_ic2bert=None,
        **{
            f"shap_{s}_{m}": no_shap
            for s in ("study", "cohorts")
            for m in ("svm", "xgboost", "amu")
        },
        shap_cohorts_ic2bert=no_shap,
        rankings=pd.DataFrame(columns=list(shap_tables.RANKING_COLUMNS)),
        **dict.fromkeys(
            ("overlap", "ic2bert_importance", "ic2bert_frequency", "embedding_map")
            + (
                "embedding_pairs",
                "embedding_summary",
                "embedding_cosine",
                "enrichment_table",
                "cox",
            ),
            empty,
        ),
        km=km,
        amu_learning_check=pd.DataFrame(
            {
                "protocol": ["loco", "loco"],
                "cohort": ["A", "B"],
                "repeat": 0,
                "trial": 0,
                "n_train": 50,
                "n_synthetic": 5,
                "epochs": 4,
                "final_loss": [1.1, 1.2],
                "train_auroc": [0.52, 0.48],
                "test_auroc": [0.6, 0.4],
                "fit_seconds": 1.0,
            }
        ),
    )
    assert assert_report_images(html) == len(figures) > 0
    # AMU's learning check: the report says plainly that this AMU did not fit its training rows
    assert (
        "AMU: does it learn?" in html
        and "loco: AMU does not fit its training rows (mean training AUROC 0.500" in html
    )
    assert all(image.format == "PNG" and min(image.size) > 50 for image in figures.values())
    assert {
        "harmonization_pca",
        "panel_coverage",
        "km_oracle_os",
        "overall_auroc",
        "cohort_auroc_loco",
        "roc_pr_loco",
    } <= set(figures)
    for missing in (
        "amu predictions",
        "ic2bert predictions",
        "IC2Bert importance",
        "AMU gene embeddings",
    ):
        assert f"<strong>{missing}</strong>: not run" in html
    assert "computed here" in html  # the evaluation pipeline's summaries were missing
    assert "their q-values are optimistic" in html  # Cox tests genes chosen on the same patients


def test_the_report_ignores_an_evaluation_older_than_the_model_predictions(synthetic_study):
    """`kedro run --pipelines baselines,interpretation` after an older evaluation: the
    all_predictions on disk no longer match the fresh model table, so the report uses the
    model table (and computes its summaries) instead of mixing stale and fresh results."""
    fresh = _predictions(synthetic_study)
    stale = fresh.iloc[: len(fresh) // 2]
    assert outcomes.evaluation_is_current(fresh, {"baselines": fresh, "amu": None})
    assert not outcomes.evaluation_is_current(stale, {"baselines": fresh, "amu": None})
    assert outcomes.choose_predictions(stale, {"baselines": fresh}) is not stale
    assert len(outcomes.choose_predictions(stale, {"baselines": fresh})) == len(fresh)
    assert outcomes.choose_predictions(fresh, {"baselines": fresh}) is fresh
