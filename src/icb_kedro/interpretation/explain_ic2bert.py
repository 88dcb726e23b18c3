"""IC2Bert explained: attention and permutation importance (and SHAP) of the fine-tuned
fold bundles on their held-out test rows, and how often each gene is in a fold's top k."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import iter_protocol_folds
from icb_kedro.interpretation import shap_analysis
from icb_kedro.interpretation.shap_tables import empty_shap_table, explain_rows, shap_frame
from icb_kedro.schema import LABEL, SAMPLE_KEY

if TYPE_CHECKING:
    from icb_kedro.pipelines.interpretation.config import Ic2bertImportance, Shap, ShapRun

logger = logging.getLogger(__name__)


INPUT_TRANSFORMS = {
    "cohort_zscore": "expression_standardized",
    "none": "harmonized_expression",
    "log2_tpm1": "harmonized_expression",
}


def ic2bert_fold_bundles(bundles: Sequence[Mapping[str, Any] | None]) -> dict[str, Any]:
    """Fine-tuned IC2Bert bundles (``ModelBundle.to_dict()``;
    ``None`` = not run) by held-out cohort."""
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle

    found: dict[str, Any] = {}
    for values in bundles:
        if values is None:
            continue
        bundle = ModelBundle.from_dict(values)
        missing = {"held_out", "protocol", "trial"} - set(bundle.metadata)
        if missing:
            raise ValueError(
                f"IC2Bert bundle metadata lacks {sorted(missing)}: "
                "cannot tell which fold trained it"
            )
        if bundle.metadata["held_out"] in found:
            raise ValueError(
                f"two IC2Bert bundles for held-out cohort {bundle.metadata['held_out']!r}"
            )
        found[str(bundle.metadata["held_out"])] = bundle
    return found


def _ic2bert_input(
    bundle: Any,
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    params: Ic2bertImportance,
) -> pd.DataFrame:
    """The expression table a bundle was trained on (its metadata, else ``params.expression``)."""
    source = INPUT_TRANSFORMS.get(str(bundle.metadata.get("input_transform")), params.expression)
    tables = {
        "harmonized_expression": harmonized_expression,
        "expression_standardized": expression_standardized,
    }
    if source not in tables:
        raise ValueError(f"IC2Bert input {source!r} is not one of {sorted(tables)}")
    return tables[source].set_index(SAMPLE_KEY)


def _ic2bert_predictor(bundle: Any) -> Any:
    """Expression rows (the bundle's genes, its input scale) -> P(responder)."""
    from icb_kedro.models.ic2bert import predict as ic2bert_predict
    from icb_kedro.models.ic2bert.tokenizer import tokenize_values

    def predict(x: np.ndarray) -> np.ndarray:
        tokens = tokenize_values(bundle.tokenizer, np.asarray(x, dtype=float))
        # Through the bundle's readout (linear readout or the fine-tuned head), as predict does.
        return ic2bert_predict.score_tokens(bundle, tokens, batch_size=min(len(tokens), 256))

    return predict


def _ic2bert_fold_importance(
    bundle: Any, x_test: np.ndarray, labels: np.ndarray, seed: int, params: Ic2bertImportance
) -> pd.DataFrame:
    """Attention, permutation and combined importance of one fine-tuned model on its test rows."""
    from icb_kedro.interpretation import importance
    from icb_kedro.models.ic2bert import predict as ic2bert_predict
    from icb_kedro.models.ic2bert.tokenizer import tokenize_values

    genes = list(bundle.genes)
    received = ic2bert_predict.received_attention(
        bundle.config,
        bundle.params,
        tokenize_values(bundle.tokenizer, x_test),
        batch_size=min(len(x_test), 8),
    )
    attention = importance.attention_importance_from_received(received, genes)
    permutation = pd.Series(0.0, index=attention.index)
    drop = pd.DataFrame({"gene": genes, "auroc_drop": np.nan, "base_auroc": np.nan})
    if labels.min() != labels.max():
        candidates = genes
        if params.permutation_genes is not None:
            candidates = (
                attention.sort_values(ascending=False).index[: params.permutation_genes].tolist()
            )
        columns = [genes.index(g) for g in candidates]
        predict = _ic2bert_predictor(bundle)

        def predict_subset(x_sub: np.ndarray) -> np.ndarray:
            full = x_test.copy()  # scikit-learn permutes one candidate column of the same test rows
            full[:, columns] = x_sub
            return predict(full)

        drop = importance.permutation_auroc_drop(
            predict_subset,
            x_test[:, columns],
            labels,
            candidates,
            n_repeats=params.n_repeats,
            seed=seed,
        )
        permutation.loc[candidates] = drop.set_index("gene")["auroc_drop"]
    else:
        logger.warning(
            "interpretation: IC2Bert test rows hold one class; permutation importance left at 0"
        )
    combined = importance.combine_importance(
        attention, permutation, params.attention_weight, params.permutation_weight
    )
    return combined.merge(drop[["gene", "auroc_drop", "base_auroc"]], on="gene", how="left")


def _ic2bert_fold_shap(
    bundle: Any, table: pd.DataFrame, fold: Any, settings: ShapRun
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """KernelSHAP of one fine-tuned bundle on (at most ``settings.max_explain_rows``) test
    rows of its fold, background from the fold's training rows: (rows, values, inputs).

    KernelSHAP takes no NaN: the genes the explained rows measure are explained, over
    background rows that measure them too; a gene the cohort does not measure is [MISSING]
    in every coalition, so its SHAP value is exactly 0.
    """
    genes = list(bundle.genes)
    explain = explain_rows(fold.test_keys, table[LABEL], settings.max_explain_rows, fold.seed)
    x_rows = table.loc[explain, genes].to_numpy(float)
    measured = ~np.isnan(x_rows).any(axis=0)
    background = table.loc[fold.train_keys, genes].to_numpy(float)[:, measured]
    background = background[~np.isnan(background).any(axis=1)]
    predict = _ic2bert_predictor(bundle)

    def predict_measured(x: np.ndarray) -> np.ndarray:
        full = np.full((len(x), len(genes)), np.nan)
        full[:, measured] = x
        return predict(full)

    values = np.zeros_like(x_rows)
    values[:, measured] = shap_analysis.kernel_shap_values(
        predict_measured,
        background,
        x_rows[:, measured],
        n_background=settings.n_background,
        nsamples=settings.nsamples,  # an int or "auto" (2 x measured genes + 2048)
        l1_reg=settings.l1_reg,
        seed=fold.seed,
    )
    return explain, values, x_rows


def explain_ic2bert(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    lodocv_folds: pd.DataFrame,
    params: Ic2bertImportance,
    shap: Shap,
    *bundles: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """IC2Bert importance (attention, permutation, combined) and KernelSHAP per held-out cohort.

    For each held-out cohort: the fine-tuned model the ic2bert_finetune pipeline chose (its
    protocol and trial are in the bundle's metadata; trained on that fold's training rows
    only) is applied to the TEST rows of the same fold. Attention = the real softmax
    probabilities (``models.ic2bert.predict``); permutation = drop in test AUROC over
    ``n_repeats`` permutations (restricted to the top ``permutation_genes`` genes by
    attention when set, the others get 0: a cost cap, stated in the report); combined =
    0.4 x attention + 0.6 x permutation (spec 2.6).
    """
    settings = shap.run("cohorts", "ic2bert")
    rows, shap_parts = [], []
    for held_out, bundle in sorted(ic2bert_fold_bundles(bundles).items()):
        protocol, trial = str(bundle.metadata["protocol"]), int(bundle.metadata["trial"])
        of_cohort = lodocv_folds[lodocv_folds["held_out"] == held_out]
        fold = next(
            (f for f in iter_protocol_folds(of_cohort, [protocol]) if f.trial == trial), None
        )
        if fold is None:
            raise ValueError(
                f"IC2Bert bundle of {held_out!r} ({protocol}, "
                f"trial {trial}) has no matching fold in lodocv_folds"
            )
        table = _ic2bert_input(bundle, harmonized_expression, expression_standardized, params)
        genes = list(bundle.genes)
        labels = table.loc[fold.test_keys, LABEL].astype(int).to_numpy()
        x_test = table.loc[fold.test_keys, genes].to_numpy(float)
        scores = _ic2bert_fold_importance(bundle, x_test, labels, fold.seed, params)
        rows.append(
            scores.assign(held_out=held_out, protocol=protocol, trial=trial, n_test=len(labels))
        )
        if "ic2bert" in settings.models and (not settings.cohorts or held_out in settings.cohorts):
            explain, values, x_rows = _ic2bert_fold_shap(bundle, table, fold, settings)
            y_rows = table.loc[explain, LABEL].astype(int).to_numpy()
            shap_parts.append(
                shap_frame(
                    "ic2bert", protocol, held_out, trial, explain, y_rows, values, x_rows, genes
                )
            )
    importance_table = (
        pd.concat(rows, ignore_index=True)[list(IMPORTANCE_TABLE_COLUMNS)]
        if rows
        else pd.DataFrame(columns=list(IMPORTANCE_TABLE_COLUMNS))
    )
    shap_table = pd.concat(shap_parts, ignore_index=True) if shap_parts else empty_shap_table()
    return importance_table, shap_table


def ic2bert_top_k_frequency(
    importance_table: pd.DataFrame, params: Ic2bertImportance
) -> pd.DataFrame:
    """The paper's Table 7: per gene, in how many held-out cohorts' top-k it is."""
    from icb_kedro.interpretation import importance

    if importance_table.empty:
        return pd.DataFrame(columns=["gene", *[f"top{k}" for k in params.top_k], "n_groups"])
    return importance.top_k_frequency(
        importance_table, params.top_k, score="combined", group="held_out"
    )


IMPORTANCE_TABLE_COLUMNS: tuple[str, ...] = (
    "held_out",
    "protocol",
    "trial",
    "gene",
    "attention",
    "permutation",
    "combined",
    "rank",
    "auroc_drop",
    "base_auroc",
    "n_test",
)
