"""Nodes of the harmonization pipeline.

Scales, said once:
- cohort files hold log2(TPM + 0.001); we convert exactly to log2(TPM + 1):
  TPM = 2**x - 0.001 (clipped at 0, the floor -9.966 means "not detected"), then log2(TPM + 1);
- the AMU matrix holds constituent ratios (each sample's 160 TPMs rescaled to sum to 1):
  relative abundances, not TPM; it is kept as is and logged by the AMU model code.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.io.readers import materialize
from icb_kedro.schema import (
    COHORT,
    LABEL,
    PANEL_AMU,
    PANEL_COMMON,
    PANEL_IC2BERT,
    SAMPLE_ID,
    SAMPLE_KEY,
    gene_columns,
)

logger = logging.getLogger(__name__)


def log2_tpm_plus_one(log2_tpm_milli: pd.DataFrame | np.ndarray) -> pd.DataFrame | np.ndarray:
    """Exact change of scale: log2(TPM + 0.001) -> log2(TPM + 1)."""
    tpm = np.clip(np.exp2(log2_tpm_milli) - 0.001, 0.0, None)
    return np.log2(tpm + 1.0)


def response_labels(clinical: pd.DataFrame, recist_labels: Mapping[str, int]) -> pd.Series:
    """1 = responder (R; CR/PR), 0 = non-responder (NR; PD), <NA> = unlabelled.

    ``response`` wins; an empty response falls back to the RECIST map (SD stays
    unlabelled by default: it is ambiguous without durability and the curators left it).
    """
    from_response = clinical["response"].map({"R": 1, "NR": 0})
    recist = clinical["recist"] if "recist" in clinical else pd.Series(np.nan, index=clinical.index)
    from_recist = recist.map(dict(recist_labels))
    return from_response.fillna(from_recist).astype("Int8")


def build_harmonized_expression(
    cohort_expression: Mapping[str, Any], cohort_clinical: Mapping[str, Any], params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One wide table on log2(TPM+1) over the genes shared by every cohort, plus clinical.

    Returns ``harmonized_expression`` (cohort, sample_id, sample_key, label, genes...) and
    ``clinical_table`` (the typed clinical rows of every cohort with the same keys).
    """
    expression = materialize(cohort_expression)
    clinical = materialize(cohort_clinical)
    common = sorted(set.intersection(*(set(df.columns) - {SAMPLE_ID} for df in expression.values())))
    frames, clinical_frames = [], []
    for cohort, expr in expression.items():
        clin = clinical[cohort].set_index(SAMPLE_ID).loc[expr[SAMPLE_ID]].reset_index()
        meta = pd.DataFrame(
            {
                COHORT: cohort,
                SAMPLE_ID: expr[SAMPLE_ID].astype(str).to_numpy(),
                SAMPLE_KEY: (cohort + ":" + expr[SAMPLE_ID].astype(str)).to_numpy(),
                LABEL: response_labels(clin, params["recist_labels"]).to_numpy(),
            }
        )
        values = log2_tpm_plus_one(expr[common].to_numpy(dtype="float64"))
        frames.append(pd.concat([meta, pd.DataFrame(values, columns=common)], axis=1))
        clin.insert(0, SAMPLE_KEY, meta[SAMPLE_KEY].to_numpy())
        clin.insert(0, COHORT, cohort)
        clinical_frames.append(clin)
    table = pd.concat(frames, ignore_index=True)
    table[LABEL] = table[LABEL].astype("Int8")
    logger.info("harmonized %d samples x %d common genes from %d cohorts", len(table), len(common), len(expression))
    return table, pd.concat(clinical_frames, ignore_index=True)


def build_gene_panels(
    cohort_expression: Mapping[str, Any], ic2bert_prior_genes: pd.DataFrame, amu_matrix: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Named panels restricted to genes every cohort measures, and what each cohort lacks.

    ``gene_panels``: (panel, gene) for ``common`` / ``ic2bert_prior`` / ``amu160``, in the
    panel's own order (IC2Bert needs a fixed gene index, spec item 16).
    ``panel_coverage``: per (panel, cohort) the panel size, genes present, and the missing
    genes listed by name.
    """
    expression = materialize(cohort_expression)
    per_cohort = {c: set(df.columns) - {SAMPLE_ID} for c, df in expression.items()}
    common = set.intersection(*per_cohort.values())
    requested = {
        PANEL_COMMON: sorted(common),
        PANEL_IC2BERT: ic2bert_prior_genes["gene"].tolist(),
        PANEL_AMU: gene_columns(amu_matrix.drop(columns=[SAMPLE_KEY])),
    }
    panels, coverage = [], []
    for panel, genes in requested.items():
        kept = [g for g in genes if g in common]
        panels.append(pd.DataFrame({"panel": panel, "gene": kept}))
        for cohort, present in per_cohort.items():
            missing = [g for g in genes if g not in present]
            coverage.append(
                {
                    "panel": panel,
                    "cohort": cohort,
                    "n_panel_genes": len(genes),
                    "n_present": len(genes) - len(missing),
                    "n_in_all_cohorts": len(kept),
                    "missing_genes": ",".join(missing),
                }
            )
    return pd.concat(panels, ignore_index=True), pd.DataFrame(coverage)


def standardize_per_cohort(harmonized_expression: pd.DataFrame) -> pd.DataFrame:
    """z-score every gene within each cohort, using all of that cohort's samples.

    Label-free, but transductive: a held-out cohort's own (unlabelled) expression sets its
    mean and sd. That is the usual practice for cross-cohort transfer and is recorded in
    the cohort summary; every label-using fit still sees training rows only. Constant
    genes map to 0.
    """
    genes = gene_columns(harmonized_expression)
    values = harmonized_expression[genes]
    if values.isna().to_numpy().any():  # ingestion's missing-value policy runs before this
        rows, cols = np.nonzero(values.isna().to_numpy())
        first = harmonized_expression.iloc[rows[0]]
        raise ValueError(
            f"harmonized_expression has {len(rows)} missing values (first: cohort {first[COHORT]!r}, "
            f"row {int(rows[0])}, gene {genes[cols[0]]!r}); set ingestion.missing_values.policy"
        )
    out = harmonized_expression.copy()
    grouped = out.groupby(COHORT, sort=False)[genes]
    mean = grouped.transform("mean")
    sd = grouped.transform(lambda s: s.std(ddof=0))
    # Only constant genes (sd 0) map to 0; nothing else is filled.
    out[genes] = ((values - mean) / sd.where(sd > 0.0, np.inf)).where(sd > 0.0, 0.0)
    return out


def combat_correct(harmonized_expression: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """ComBat across cohorts (inmoose's maintained pycombat), label-free.

    Labels never enter (no covariate model): using the response as a covariate would
    leak test labels into every fold. Fitting on all cohorts is transductive (held-out
    cohorts' expression shapes the location/scale estimates); ``combat.enabled: false``
    skips it and the summary records the choice.
    """
    if not params.get("enabled", True):
        return harmonized_expression.copy()
    from inmoose.pycombat import pycombat_norm

    genes = gene_columns(harmonized_expression)
    values = harmonized_expression[genes]
    # Genes constant within any cohort break ComBat's per-batch variance: keep them as is.
    variable = values.groupby(harmonized_expression[COHORT]).std(ddof=0).gt(1e-8).all(axis=0)
    fit_genes = [g for g in genes if variable[g]]
    corrected = pycombat_norm(
        values[fit_genes].T.to_numpy(), harmonized_expression[COHORT].tolist(), par_prior=params.get("parametric", True)
    )
    out = harmonized_expression.copy()
    out[fit_genes] = np.asarray(corrected).T
    logger.info("ComBat adjusted %d genes (%d constant within a cohort left as is)", len(fit_genes), len(genes) - len(fit_genes))
    return out


def summarize_cohorts(
    harmonized_expression: pd.DataFrame,
    clinical_table: pd.DataFrame,
    ingestion_report: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-cohort counts (R / NR / unlabelled, genes, cancer, therapy) and headline metrics."""
    rows = []
    for cohort, group in harmonized_expression.groupby(COHORT, sort=True):
        clin = clinical_table[clinical_table[COHORT] == cohort]
        genes_on_file = ingestion_report.set_index("cohort").loc[cohort, "n_genes"]
        rows.append(
            {
                "cohort": cohort,
                "cancer": ", ".join(sorted(clin["cancer_type"].dropna().astype(str).unique())) if "cancer_type" in clin else "",
                "therapy": ", ".join(sorted(clin["treatment"].dropna().astype(str).unique())) if "treatment" in clin else "",
                "n_samples": len(group),
                "n_R": int((group[LABEL] == 1).sum()),
                "n_NR": int((group[LABEL] == 0).sum()),
                "n_unlabelled": int(group[LABEL].isna().sum()),
                "n_genes_on_file": int(genes_on_file),
                "n_common_genes": len(gene_columns(group)),
                "n_missing_values_imputed": int(ingestion_report.set_index("cohort").loc[cohort, "n_missing_values"]),
            }
        )
    summary = pd.DataFrame(rows)
    summary["standardization"] = "per-cohort z-score on all of the cohort's samples (label-free, transductive)"
    summary["combat"] = (
        "inmoose pycombat_norm over all cohorts (label-free, transductive)" if params["combat"].get("enabled", True) else "off"
    )
    totals = summary[["n_samples", "n_R", "n_NR", "n_unlabelled"]].sum()
    metrics = {
        "n_cohorts": {"value": float(len(summary)), "step": 0},
        "n_samples": {"value": float(totals["n_samples"]), "step": 0},
        "n_responders": {"value": float(totals["n_R"]), "step": 0},
        "n_non_responders": {"value": float(totals["n_NR"]), "step": 0},
        "n_unlabelled": {"value": float(totals["n_unlabelled"]), "step": 0},
        "n_common_genes": {"value": float(summary["n_common_genes"].iloc[0]), "step": 0},
    }
    return summary, metrics


def plot_pca_before_after(
    harmonized_expression: pd.DataFrame, expression_standardized: pd.DataFrame, expression_combat: pd.DataFrame
):
    """PCA (first two components) coloured by cohort: raw scale vs standardized vs ComBat."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA

    panels = [
        ("log2(TPM+1), no correction", harmonized_expression),
        ("per-cohort standardized", expression_standardized),
        ("ComBat (inmoose)", expression_combat),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    cohorts = sorted(harmonized_expression[COHORT].unique())
    colours = plt.get_cmap("tab10")
    for ax, (title, table) in zip(axes, panels):
        genes = gene_columns(table)
        pca = PCA(n_components=2, random_state=0)
        xy = pca.fit_transform(table[genes].to_numpy())
        for i, cohort in enumerate(cohorts):
            mask = (table[COHORT] == cohort).to_numpy()
            ax.scatter(xy[mask, 0], xy[mask, 1], s=10, alpha=0.7, color=colours(i % 10), label=cohort)
        var = pca.explained_variance_ratio_ * 100
        ax.set_title(title)
        ax.set_xlabel(f"PC1 ({var[0]:.1f}% var)")
        ax.set_ylabel(f"PC2 ({var[1]:.1f}% var)")
    axes[-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, title="cohort")
    fig.suptitle(f"Cohort effects before and after harmonization ({len(harmonized_expression)} samples)")
    fig.tight_layout()
    return fig
