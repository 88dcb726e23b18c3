"""AMU explained: Kernel SHAP of the persisted fold networks on their test rows, and the
final model's learned gene embeddings (map, neighbours vs co-expression and signatures)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import iter_protocol_folds
from icb_kedro.interpretation import shap_analysis
from icb_kedro.interpretation.outcomes import gene_set_dict
from icb_kedro.interpretation.shap_tables import empty_shap_table, explain_rows, shap_frame
from icb_kedro.models.amu.parameters import AmuConfig
from icb_kedro.schema import LABEL, SAMPLE_KEY

if TYPE_CHECKING:
    from icb_kedro.pipelines.interpretation.config import Embeddings, Shap, ShapRun

logger = logging.getLogger(__name__)


def _amu_fitted(weights: Mapping[str, Any] | None, fold_id: str) -> Any | None:
    """The FittedNetwork of one fold from an ``amu_weights_*`` dict (None if absent)."""
    if not weights or fold_id not in weights:
        return None
    from icb_kedro.models.amu.fitted_network import FittedNetwork

    return FittedNetwork.from_mapping(weights[fold_id])


def _amu_kernel_shap(
    fitted: Any, x_train: np.ndarray, x_rows: np.ndarray, settings: ShapRun, seed: int
) -> np.ndarray:
    from icb_kedro.models.amu.train import load_network, predict_proba

    # The engine it was trained with (fused: ~7x faster inference, same outputs to 1e-5).
    network = load_network(fitted, fitted.engine)
    return shap_analysis.kernel_shap_values(
        # 256 rows a batch: one [batch, 10 heads, genes, genes] attention tensor at 4096 rows
        # and 160 genes is ~4 GB with the eager engine, which a larger nsamples would reach.
        lambda x: predict_proba(fitted, x, batch_size=256, network=network),
        x_train,
        x_rows,
        n_background=settings.n_background,
        nsamples=settings.nsamples,  # an int or "auto" (2 x genes + 2048)
        l1_reg=settings.l1_reg,
        seed=seed,
    )


def _fold_shap_frame(
    fitted: Any,
    features: pd.DataFrame,
    train_keys: Any,
    rows: Any,
    labels: pd.Series,
    fold: Any,
    genes: Any,
    settings: ShapRun,
) -> pd.DataFrame:
    """Kernel SHAP of one fold network on its explained test ``rows`` (background from
    ``train_keys``), as a SHAP table of that fold."""
    shap_values = _amu_kernel_shap(
        fitted,
        features.loc[train_keys].to_numpy(),
        features.loc[rows].to_numpy(),
        settings,
        fold.seed,
    )
    return shap_frame(
        "amu",
        fold.protocol,
        fold.held_out,
        fold.trial,
        rows,
        labels.loc[rows].to_numpy(int),
        shap_values,
        features.loc[rows].to_numpy(),
        genes,
    )


def explain_amu_study(
    amu_matrix: pd.DataFrame,
    amu_holdout_folds: pd.DataFrame,
    weights: Mapping[str, Any] | None,
    amu_params: Mapping[str, Any] | AmuConfig,
    shap: Shap,
) -> pd.DataFrame:
    """KernelSHAP of the AMU networks of the study setting (the AMU paper's 160 genes).


    Uses the fitted networks the amu pipeline persisted per ``amu_holdout`` fold (trained
    on that fold's training rows); test rows of the same fold are explained.
    """
    from icb_kedro.evaluation.protocols import iter_amu_holdout_folds
    from icb_kedro.models.amu.features import SCALE_RATIO, amu_features

    genes = [c for c in amu_matrix.columns if c not in (SAMPLE_KEY, LABEL)]
    settings = shap.run("study", "amu")
    if weights is None or "amu" not in settings.models:
        return empty_shap_table(genes)
    pseudo_count = AmuConfig.of(amu_params, "params:amu").study.pseudo_count
    values = amu_features(amu_matrix, genes, SCALE_RATIO, pseudo_count)
    features = pd.DataFrame(values, index=amu_matrix[SAMPLE_KEY].to_numpy(), columns=genes)
    labels = amu_matrix.set_index(SAMPLE_KEY)[LABEL]
    parts = []
    for fold in iter_amu_holdout_folds(amu_holdout_folds, settings.n_trials):
        fitted = _amu_fitted(weights, f"{fold.protocol}|{fold.held_out}|{fold.trial}")
        if fitted is None:
            logger.warning(
                "interpretation: no AMU network persisted for study fold %s/%s",
                fold.held_out,
                fold.trial,
            )
            continue
        if list(fitted.features) != genes:
            raise ValueError(
                "the persisted AMU study network was trained on other genes than "
                "amu_matrix's columns"
            )
        rows = explain_rows(fold.test_keys, labels, settings.max_explain_rows, fold.seed)
        parts.append(
            _fold_shap_frame(fitted, features, fold.train_keys, rows, labels, fold, genes, settings)
        )
    return pd.concat(parts, ignore_index=True) if parts else empty_shap_table(genes)


def explain_amu_cohorts(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    amu_params: Mapping[str, Any] | AmuConfig,
    shap: Shap,
    *weights: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """KernelSHAP of the AMU networks fitted per LODOCV fold (``amu_weights_fold_*``, one
    ``{fold id: network dict}`` per held-out cohort; ``None`` for a cohort not run)."""
    from icb_kedro.models.amu.features import amu_features

    settings = shap.run("cohorts", "amu")
    networks: dict[str, Any] = {}
    for per_cohort in weights:
        networks.update(per_cohort or {})
    if not networks or "amu" not in settings.models:
        return empty_shap_table()
    cohorts = AmuConfig.of(amu_params, "params:amu").cohorts  # as the amu pipeline read it
    source = cohorts.expression
    table = harmonized_expression if source == "harmonized_expression" else expression_standardized
    scale = {"harmonized_expression": "log2_tpm1", "expression_standardized": "zscore"}[source]
    labels = table.set_index(SAMPLE_KEY)[LABEL]
    protocol, wanted = settings.protocol, settings.cohorts
    parts, genes = [], []
    for fold in iter_protocol_folds(lodocv_folds, [protocol], 1, max_trials=settings.n_trials):
        if wanted and fold.held_out not in wanted:
            continue
        fitted = _amu_fitted(networks, f"{fold.protocol}|{fold.held_out}|{fold.trial}")
        if fitted is None:
            continue
        genes = list(fitted.features)
        # AMU's missing-gene policy (amu nodes): cohorts lacking panel genes were left out.
        measured = table[genes].notna().all(axis=1).to_numpy()
        features = pd.DataFrame(
            amu_features(table[measured], genes, scale, cohorts.pseudo_count),
            index=table.loc[measured, SAMPLE_KEY].to_numpy(),
            columns=genes,
        )
        train_keys = [k for k in fold.train_keys if k in features.index]
        rows = explain_rows(
            [k for k in fold.test_keys if k in features.index],
            labels,
            settings.max_explain_rows,
            fold.seed,
        )
        parts.append(
            _fold_shap_frame(fitted, features, train_keys, rows, labels, fold, genes, settings)
        )
    return pd.concat(parts, ignore_index=True) if parts else empty_shap_table(genes)


def amu_embedding_table(
    weights: Mapping[str, Any] | None, gene_embeddings: pd.DataFrame | None, fold: str
) -> pd.DataFrame | None:
    """The gene embedding to analyse: the study fold network's 160 x 20 table (trained on
    that fold's training rows, the AMU paper's setting) if persisted, else the exported
    ``amu_gene_embeddings`` of the final cohort model. Indexed by gene. ``fold``: the study
    fold id (``embeddings.fold``)."""
    fitted = _amu_fitted(weights, fold)
    if fitted is not None:
        return pd.DataFrame(fitted.gene_embeddings(), index=list(fitted.features))
    if gene_embeddings is not None and len(gene_embeddings):
        return gene_embeddings.set_index("gene")
    return None


def amu_initial_embedding_table(
    weights: Mapping[str, Any] | None, fold: str
) -> pd.DataFrame | None:
    """The table the analysed study fold network was initialised with (same seed and config,
    rebuilt exactly); None when the embedding analysed is an exported table (no seed)."""
    from icb_kedro.interpretation.embeddings import initial_embedding

    fitted = _amu_fitted(weights, fold)
    return initial_embedding(fitted) if fitted is not None else None


def analyse_amu_embeddings(
    weights: Mapping[str, Any] | None,
    gene_embeddings: pd.DataFrame | None,
    amu_matrix: pd.DataFrame,
    gene_sets: pd.DataFrame,
    params: Embeddings,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Gene map (t-SNE + cluster), neighbour pairs with co-expression / co-membership,
    the permutation-test summary, and the cosine-similarity and Euclidean-distance matrices
    (long form: ``gene, other, cosine_similarity, euclidean_distance``).

    The summary also holds the null comparison with the initialisation: the same statistics
    (same permutations) of the table the network started from, rows ``embedding ==
    "initial"``, and the drift ||E - E0||_F / ||E0||_F (``relative_drift``), so a map that
    mostly shows the random seed is visible as such. An exported embedding (no seed) has
    only ``trained`` rows, with NaN drift."""
    from icb_kedro.interpretation import embeddings

    empty = pd.DataFrame()
    table = amu_embedding_table(weights, gene_embeddings, params.fold)
    if table is None:
        return empty, empty, empty, empty
    seed = params.seed
    clusters = embeddings.cluster_genes(table, params.n_clusters)
    gene_map = embeddings.tsne_map(table, params.perplexity, seed).merge(clusters, on="gene")
    genes = [g for g in table.index if g in amu_matrix.columns]
    ratios = amu_matrix[genes].astype(float)
    correlation = embeddings.coexpression(
        ratios.loc[:, ratios.std() > 0], method="spearman"
    )  # rank-based: log or not, the same
    membership = embeddings.signature_comembership(gene_set_dict(gene_sets), list(table.index))

    def neighbour_statistics(
        frame: pd.DataFrame,
    ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        found = embeddings.nearest_neighbour_pairs(frame, params.n_neighbours)
        return (
            found,
            *embeddings.compare_neighbours(
                found, correlation, membership, params.n_permutations, seed
            ),
        )

    pairs, per_pair, summary = neighbour_statistics(table)
    # None exactly when `table` is the exported fallback
    initial = amu_initial_embedding_table(weights, params.fold)
    if initial is not None:
        initial_pairs, _, initial_summary = neighbour_statistics(initial)
        drift = embeddings.embedding_drift(table, initial)
        shared = embeddings.shared_neighbour_fraction(pairs, initial_pairs)
        summary = embeddings.with_initial_comparison(summary, initial_summary, drift, shared)
        logger.info(
            "interpretation: AMU embedding drift from its initialisation %.4f; "
            "%.0f%% of neighbour pairs unchanged",
            drift,
            100 * shared,
        )
    else:
        summary = embeddings.with_initial_comparison(summary)
    euclidean, cosine = embeddings.embedding_similarities(table)
    similarity = pd.concat(
        [
            cosine.rename_axis(index="gene", columns="other").stack().rename("cosine_similarity"),
            euclidean.rename_axis(index="gene", columns="other")
            .stack()
            .rename("euclidean_distance"),
        ],
        axis=1,
    ).reset_index()
    return gene_map, per_pair, summary, similarity
