"""Report sections on the genes behind the predictions: SHAP rankings and their stability,
IC2Bert attention/permutation importance, AMU gene embeddings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from icb_kedro.reporting.report import Block, NotRun, Section, Table, Text, table_block
from icb_kedro.reporting.study_inputs import SETTING_TITLES, StudyInputs, present, safe_figure


def stability_table(stability: pd.DataFrame, top_k: int) -> Block:
    """Each model's top genes with how often they stay in its top k (bootstrap of the explained
    rows; share of folds) and their rank's 95% interval: a single ranking hides that."""
    k = int(stability["k"].iloc[0])
    shown = stability[stability["rank"] <= top_k].copy()
    shown["rank 95% interval"] = [
        f"{lo:.0f}-{hi:.0f}" for lo, hi in zip(shown["rank_ci_low"], shown["rank_ci_high"])
    ]
    shown = shown.rename(
        columns={
            "bootstrap_top_k": f"in top {k} (bootstrap)",
            "fold_top_k": f"in top {k} (share of folds)",
        }
    )
    columns = [
        "model",
        "gene",
        "rank",
        "rank 95% interval",
        f"in top {k} (bootstrap)",
        f"in top {k} (share of folds)",
        "n_folds",
    ]
    caption = (
        f"Stability of the top-{top_k} genes: share of {int(stability['n_boot'].iloc[0])} "
        "bootstrap resamples of the explained rows (within folds) and share of the folds whose own "
        f"rows put the gene in the model's top {k}"
    )
    return Table(
        shown.sort_values(["model", "rank"])[columns],
        caption,
        max_rows=top_k * stability["model"].nunique(),
    )


def section_shap(inputs: StudyInputs, top_k: int) -> Section:
    from icb_kedro.interpretation import shap_analysis

    section = Section("Which genes drive the predictions (SHAP)")
    section.add(
        Text(
            "SHAP values are computed on the **test rows** of stored folds, for models fitted on "
            "those folds' training rows only, with a background summarised (k-means) from the "
            "training rows. SVM, AMU and IC2Bert: KernelSHAP on P(responder); XGBoost: exact "
            "TreeSHAP (log-odds units). Genes are ranked by mean |SHAP| over the explained rows; "
            "colour/sign = correlation of a gene's expression with its SHAP value (red: "
            "higher expression favours response)."
        )
    )
    if not present(inputs.rankings):
        return section.add(
            NotRun("SHAP", "no model could be explained (see the list of missing inputs above)")
        )
    for setting, rows in inputs.rankings.groupby("setting", sort=True):
        sub = Section(SETTING_TITLES.get(setting, setting))
        protocols = rows.groupby("model")["protocol"].first()
        sub.add(
            Text("Folds explained: " + "; ".join(f"{m}: `{p}`" for m, p in protocols.items()) + ".")
        )
        top = rows[(rows["rank"] <= top_k) & (rows["mean_abs_shap"] > 0)].sort_values(
            ["model", "rank"]
        )
        # A model explained under two protocols (IC2Bert: transfer, transfer_paper) gets a
        # column each.
        several = top.groupby("model")["protocol"].transform("nunique") > 1
        top = top.assign(
            column=top["model"].where(~several, top["model"] + " (" + top["protocol"] + ")")
        )
        grid = top.pivot(index="rank", columns="column", values="gene").reset_index()
        sub.add(Table(grid, f"Top-{top_k} genes by mean |SHAP| per model", max_rows=top_k))
        if present(inputs.overlap):
            mine = inputs.overlap[inputs.overlap["setting"] == setting]
            for k in sorted(mine["k"].unique()):
                at_k = mine[mine["k"] == k]
                n_models = int(at_k["n_models_compared"].max())
                shared = at_k.loc[at_k["in_all"].astype(bool), "gene"].tolist()
                text = (
                    f"**Intersection of the {n_models} models' top-{k} lists**: "
                    + (", ".join(shared) if shared else "empty")
                    + "."
                )
                partial = at_k[(at_k["n_models"] >= 2) & ~at_k["in_all"].astype(bool)]
                if n_models > 2:
                    text += (
                        f" In the top-{k} of at least two models: "
                        + (
                            ", ".join(
                                f"{g} ({m})" for g, m in zip(partial["gene"], partial["models"])
                            )
                            or "none"
                        )
                        + "."
                    )
                sub.add(Text(text))
        if present(inputs.stability) and (inputs.stability["setting"] == setting).any():
            sub.add(
                stability_table(inputs.stability[inputs.stability["setting"] == setting], top_k)
            )
        n_protocols = rows.groupby("model")["protocol"].nunique()
        for (protocol, model), ranking in rows.groupby(["protocol", "model"], sort=True):
            name = (
                model if n_protocols[model] == 1 else f"{model}_{protocol}"
            )  # figure names are unique
            sub.add(
                safe_figure(
                    f"shap_bar_{setting}_{name}",
                    lambda r=ranking, m=model, p=protocol: shap_analysis.plot_shap_bar(
                        r, f"{m} ({p}): mean |SHAP|", max_display=top_k * 2
                    ),
                    f"{model}: mean |SHAP| of the top genes "
                    f"({int(ranking['n_rows'].iloc[0])} test rows).",
                )
            )
            table = inputs.shap_tables.get(f"{protocol}:{model}")
            if present(table):
                order = ["cohort", "trial", "sample_key"]
                genes = [
                    c
                    for c in table.columns
                    if c
                    not in ("model", "protocol", "cohort", "trial", "sample_key", "y_true", "kind")
                ]
                shap_rows = table[table["kind"] == "shap"].sort_values(order)
                feature_rows = table[table["kind"] == "feature"].sort_values(order)
                genes = [g for g in genes if shap_rows[g].notna().all()]
                sub.add(
                    safe_figure(
                        f"shap_beeswarm_{setting}_{name}",
                        lambda s=shap_rows, f=feature_rows, g=genes, m=model, p=protocol: (
                            shap_analysis.plot_shap_beeswarm(
                                s[g].to_numpy(float),
                                f[g].to_numpy(float),
                                g,
                                f"{m} ({p})",
                                max_display=top_k * 2,
                            )
                        ),
                        f"{model}: SHAP value per test row (colour: "
                        "the model's input value of the gene).",
                    )
                )
        section.subsections.append(sub)
    return section


def section_ic2bert_importance(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import importance

    section = Section("IC2Bert gene importance (attention and permutation)")
    section.add(
        Text(
            "As in the IC2Bert paper: attention importance = the softmax attention probability "
            "each gene receives, averaged over layers, heads, query positions and test samples, "
            "normalised to sum 1 (the original code averaged block outputs instead); permutation "
            "importance = drop in test AUROC when the gene is permuted (mean over R permutations), "
            "normalised by the sum of absolute values; combined = 0.4 x attention + 0.6 x "
            "permutation. Frequencies count the held-out cohorts whose top-k list contains the "
            "gene (the paper's Table 7)."
        )
    )
    if not present(inputs.ic2bert_importance):
        return section.add(
            NotRun("IC2Bert importance", "no fine-tuned IC2Bert fold models were found")
        )
    permuted = inputs.ic2bert_importance.groupby("held_out")["auroc_drop"].apply(
        lambda d: int(d.notna().sum())
    )
    n_genes = int(inputs.ic2bert_importance.groupby("held_out").size().max())
    folds = inputs.ic2bert_importance.groupby("held_out")[["protocol", "trial", "n_test"]].first()
    section.add(
        Text(
            "Models: the fine-tuned model chosen per held-out cohort ("
            + "; ".join(
                f"{h.rsplit('_', 1)[-1]}: {r.protocol} trial {r.trial}, {r.n_test} test rows"
                for h, r in folds.iterrows()
            )
            + "). "
            + (
                f"Permutation importance was computed for the {int(permuted.max())} genes with the "
                f"most attention per cohort (cost cap; the other {n_genes - int(permuted.max())} "
                "genes count 0), not for all genes as in the paper."
                if 0 < permuted.max() < n_genes
                else ""
            )
            + (
                " Cohorts whose test split holds one class have no AUROC: "
                "their permutation part is 0."
                if (permuted == 0).any()
                else ""
            )
        )
    )
    if present(inputs.ic2bert_frequency):
        section.add(
            Table(inputs.ic2bert_frequency, "Top-k frequency across held-out cohorts", max_rows=30)
        )
        section.add(
            safe_figure(
                "ic2bert_top10_frequency",
                lambda: importance.plot_top_k_frequency(inputs.ic2bert_frequency, k=10),
                "Held-out cohorts with the gene among their top-10 combined importance.",
            )
        )
    top = inputs.ic2bert_importance[inputs.ic2bert_importance["rank"] <= 10]
    section.add(
        Table(
            top.pivot(index="rank", columns="held_out", values="gene").reset_index(),
            "Top-10 genes per held-out cohort (combined importance)",
            max_rows=10,
        )
    )
    pooled = (
        inputs.ic2bert_importance.groupby("gene")[["attention", "permutation", "combined"]]
        .mean()
        .reset_index()
    )
    section.add(
        safe_figure(
            "ic2bert_importance_components",
            lambda: importance.plot_importance_components(pooled.assign(rank=0)),
            "Attention vs permutation importance, averaged over held-out cohorts "
            "(top-10 combined labelled).",
        )
    )
    return section


def embedding_drift_text(summary: pd.DataFrame | None, alpha: float = 0.05) -> str | None:
    """One sentence: how far training moved the embedding from its initialisation, and
    whether the neighbour statistics reach another verdict than the untrained table's."""
    if not present(summary) or "embedding" not in summary.columns:
        return None
    trained = summary[summary["embedding"] == "trained"].set_index("statistic")
    initial = summary[summary["embedding"] == "initial"].set_index("statistic")
    if trained.empty:
        return None
    if initial.empty or not np.isfinite(trained["relative_drift"]).any():
        return (
            "**Drift from initialisation**: not measured (the analysed embedding is an exported "
            "table without its training seed), so the statistics below cannot be told apart from "
            "those of a random initialisation."
        )
    drift = float(trained["relative_drift"].iloc[0])
    shared = float(trained["neighbour_pairs_shared"].iloc[0])
    names = [name for name in trained.index if name in initial.index]
    compared = "; ".join(
        f"{name.replace('_', ' ')} {trained.loc[name, 'observed']:.3f} (p = "
        f"{trained.loc[name, 'p_value']:.3g}) vs {initial.loc[name, 'observed']:.3f} "
        f"(p = {initial.loc[name, 'p_value']:.3g})"
        for name in names
    )
    changed = [
        name.replace("_", " ")
        for name in names
        if (trained.loc[name, "p_value"] < alpha) != (initial.loc[name, "p_value"] < alpha)
    ]
    significant = [name for name in names if trained.loc[name, "p_value"] < alpha]
    if changed:
        verdict = (
            f"another verdict at p < {alpha:g} than the untrained table for {', '.join(changed)}"
        )
    elif significant:
        verdict = (
            f"the same verdicts at p < {alpha:g} as the untrained table, so the associations "
            "found cannot be credited to training"
        )
    else:
        verdict = (
            f"the same verdicts at p < {alpha:g} as the untrained table (no association in either)"
        )
    return (
        "**Drift from initialisation**: training moved the embedding by ‖E − E₀‖ / ‖E₀‖ = "
        f"{drift:.3g} from the table the network was initialised with (same seed, rebuilt "
        f"exactly), {100 * shared:.0f}% of its nearest-neighbour pairs are already neighbours "
        "there, and the statistics of the trained vs the initial embedding "
        f"({compared}) give {verdict}."
    )


def section_embeddings(inputs: StudyInputs) -> Section:
    from icb_kedro.interpretation import embeddings

    section = Section("AMU gene embeddings")
    if not present(inputs.embedding_map):
        return section.add(
            NotRun("AMU gene embeddings", "no fitted AMU network or exported embedding was found")
        )
    section.add(
        Text(
            "AMU learns one 20-d identity vector per gene. Below: a t-SNE map (cosine metric, "
            "coloured by average-linkage hierarchical cluster), the clustered cosine-similarity "
            "matrix, and whether embedding neighbours are co-expressed (Spearman on the AMU "
            "matrix) or share a shipped ICB signature more than random gene pairs "
            "(gene-label permutation test)."
        )
    )
    section.add(
        safe_figure(
            "amu_embedding_tsne",
            lambda: embeddings.plot_tsne(
                inputs.embedding_map[["gene", "tsne_1", "tsne_2"]],
                inputs.embedding_map[["gene", "cluster"]],
            ),
            "t-SNE of the AMU gene embedding.",
        )
    )
    if present(inputs.embedding_cosine):
        cosine = inputs.embedding_cosine.pivot(
            index="gene", columns="other", values="cosine_similarity"
        )
        section.add(
            safe_figure(
                "amu_embedding_similarity",
                lambda: embeddings.plot_similarity_heatmap(
                    cosine, inputs.embedding_map[["gene", "leaf_order"]]
                ),
                "Cosine similarity of gene vectors in clustering order.",
            )
        )
    drift = embedding_drift_text(inputs.embedding_summary)
    if drift:
        section.add(Text(drift))
    section.add(
        table_block(
            inputs.embedding_summary,
            "Embedding neighbours vs co-expression and signature co-membership "
            "(trained and initial embedding)",
        )
    )
    if present(inputs.embedding_pairs):
        pairs = inputs.embedding_pairs[inputs.embedding_pairs["rank"] == 1].sort_values(
            "cosine_similarity", ascending=False
        )
        section.add(Table(pairs, "Nearest-neighbour gene pairs (most similar first)", max_rows=25))
    return section
