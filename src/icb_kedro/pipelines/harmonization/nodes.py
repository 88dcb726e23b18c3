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
from icb_kedro.io.scales import log2_tpm_plus_one
from icb_kedro.io.validation import check_duplicate_samples
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

from .config import Combat, HarmonizationConfig

logger = logging.getLogger(__name__)


LABEL_RULES = ("response", "response_recist")
#: The strict call from a RECIST code (the shared data's ``response_recist``; NE: none).
STRICT_RECIST = {"CR": 1, "PR": 1, "SD": 0, "PD": 0}


def response_labels(
    clinical: pd.DataFrame, recist_labels: Mapping[str, int], rule: str = "response"
) -> pd.Series:
    """1 = responder, 0 = non-responder, <NA> = unlabelled, by the configured label rule.

    ``response`` (default): the curated call (``response`` R/NR, which sometimes counts a
    durable SD as R); an empty response falls back to the RECIST map (SD stays unlabelled by
    default: it is ambiguous without durability and the curators left it).
    ``response_recist``: the strict call, CR/PR vs SD/PD (column ``response_recist``, or
    from ``recist`` in a file without that column, e.g. a user's own cohort; empty where no
    RECIST is recorded, so those samples are unlabelled under this rule).
    """
    if rule not in LABEL_RULES:
        raise ValueError(f"harmonization.label must be one of {LABEL_RULES}, got {rule!r}")
    recist = clinical["recist"] if "recist" in clinical else pd.Series(np.nan, index=clinical.index)
    if rule == "response_recist":
        if "response_recist" not in clinical:
            return recist.map(STRICT_RECIST).astype("Int8")
        return clinical["response_recist"].map({"R": 1, "NR": 0}).astype("Int8")
    from_response = clinical["response"].map({"R": 1, "NR": 0})
    from_recist = recist.map(dict(recist_labels))
    return from_response.fillna(from_recist).astype("Int8")


def build_gene_panels(
    cohort_expression: Mapping[str, Any],
    ic2bert_prior_genes: pd.DataFrame,
    amu_matrix: pd.DataFrame,
    params: dict[str, Any] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-model gene panels as configured (``harmonization.panels``, see ``icb_kedro.panels``).

    ``gene_panels``: (panel, gene, n_cohorts) in each panel's own order (IC2Bert needs a
    fixed gene index, spec item 16). ``panel_coverage``: per (panel, cohort) the panel size,
    the genes the cohort measures and the missing ones by name.
    """
    from icb_kedro.panels import build_panels

    expression = materialize(cohort_expression)
    per_cohort = {c: set(df["gene"]) for c, df in expression.items()}
    named = {
        PANEL_IC2BERT: ic2bert_prior_genes["gene"].tolist(),
        PANEL_AMU: gene_columns(amu_matrix.drop(columns=[SAMPLE_KEY])),
    }
    config = HarmonizationConfig.of(params, "params:harmonization")
    panels, coverage = build_panels(config.panel_specs(), named, per_cohort)
    for panel, rows in coverage.groupby("panel", sort=False):
        short = rows[rows["n_missing"] > 0]
        logger.info(
            "gene panel %s: %d genes; cohorts lacking some: %s",
            panel,
            int(rows["n_panel"].iloc[0]),
            ", ".join(f"{c} ({n} missing)" for c, n in zip(short["cohort"], short["n_missing"]))
            or "none",
        )
    return panels, coverage


def build_harmonized_expression(
    cohort_expression: Mapping[str, Any],
    cohort_clinical: Mapping[str, Any],
    gene_panels: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One wide table on log2(TPM+1) over the union of the model panels, plus clinical.

    Returns ``harmonized_expression`` (cohort, sample_id, sample_key, label, genes...) and
    ``clinical_table`` (the typed clinical rows of every cohort with the same keys). A gene
    that a cohort does not measure is NaN for all of that cohort's samples (ingestion has
    already handled missing *values*, so NaN here always means "gene not on file"); each
    model's missing-gene policy decides what to do with it.
    """
    expression = materialize(cohort_expression)
    clinical = materialize(cohort_clinical)
    genes = list(dict.fromkeys(gene_panels["gene"]))
    config = HarmonizationConfig.of(params, "params:harmonization")
    frames, clinical_frames = [], []
    for cohort, by_gene in expression.items():
        by_gene = by_gene.set_index("gene")  # gene-major as stored by ingestion
        samples = pd.Series(by_gene.columns.astype(str))
        clin = clinical[cohort].set_index(SAMPLE_ID).loc[samples].reset_index()
        meta = pd.DataFrame(
            {
                COHORT: cohort,
                SAMPLE_ID: samples.to_numpy(),
                SAMPLE_KEY: (cohort + ":" + samples).to_numpy(),
                LABEL: response_labels(clin, config.recist_labels, config.label).to_numpy(),
            }
        )
        values = log2_tpm_plus_one(by_gene.reindex(genes).to_numpy(dtype="float64").T)
        frames.append(pd.concat([meta, pd.DataFrame(values, columns=genes)], axis=1))
        clin.insert(0, SAMPLE_KEY, meta[SAMPLE_KEY].to_numpy())
        clin.insert(0, COHORT, cohort)
        clinical_frames.append(clin)
    table = pd.concat(frames, ignore_index=True)
    table[LABEL] = table[LABEL].astype("Int8")
    common = gene_panels.loc[gene_panels["panel"] == PANEL_COMMON, "gene"].tolist()
    check_duplicate_samples(
        table[common].to_numpy(), table[SAMPLE_KEY].tolist(), config.duplicate_correlation
    )
    n_common = len(common)
    logger.info(
        "harmonized %d samples x %d panel genes (%d in every cohort) from %d "
        "cohorts; label rule %s",
        len(table),
        len(genes),
        n_common,
        len(expression),
        config.label,
    )
    return table, pd.concat(clinical_frames, ignore_index=True)


def _measured(values: pd.DataFrame, cohorts: pd.Series) -> pd.DataFrame:
    """cohort x gene: True where the cohort measures the gene; partial NaN is an error."""
    isna = values.isna()
    by_cohort_all = isna.groupby(cohorts.to_numpy()).all()
    by_cohort_any = isna.groupby(cohorts.to_numpy()).any()
    partial = by_cohort_any & ~by_cohort_all
    if partial.to_numpy().any():
        cohort, gene = next(
            (c, g) for c, row in partial.iterrows() for g, flag in row.items() if flag
        )
        row = int(np.flatnonzero(((cohorts == cohort).to_numpy()) & isna[gene].to_numpy())[0])
        raise ValueError(
            f"harmonized_expression: gene {gene!r} is missing for some but not all samples of "
            f"cohort {cohort!r} (first at row {row}); set ingestion.missing_values.policy"
        )
    return ~by_cohort_all


def standardize_per_cohort(harmonized_expression: pd.DataFrame) -> pd.DataFrame:
    """z-score every gene within each cohort, using all of that cohort's samples.

    Label-free, but transductive: a held-out cohort's own (unlabelled) expression sets its
    mean and sd. That is the usual practice for cross-cohort transfer and is recorded in
    the cohort summary; every label-using fit still sees training rows only. Constant
    genes map to 0; a gene the cohort does not measure stays NaN (the model's missing-gene
    policy handles it).
    """
    genes = gene_columns(harmonized_expression)
    values = harmonized_expression[genes]
    _measured(values, harmonized_expression[COHORT])  # refuses partially missing genes
    out = harmonized_expression.copy()
    grouped = values.groupby(harmonized_expression[COHORT].to_numpy(), sort=False)
    mean = grouped.transform("mean")
    sd = grouped.transform(lambda s: s.std(ddof=0))
    # Only constant genes (sd 0) map to 0; unmeasured genes (NaN sd) stay NaN.
    out[genes] = ((values - mean) / sd.where(sd > 0.0, np.inf)).where(~(sd == 0.0), 0.0)
    return out


def combat_correct(harmonized_expression: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """ComBat across cohorts (inmoose's maintained pycombat), label-free.

    Labels never enter (no covariate model): using the response as a covariate would
    leak test labels into every fold. Fitting on all cohorts is transductive (held-out
    cohorts' expression shapes the location/scale estimates); ``combat.enabled: false``
    skips it and the summary records the choice.
    """
    combat = Combat.of(params, "params:harmonization.combat")
    if not combat.enabled:
        return harmonized_expression.copy()
    from inmoose.pycombat import pycombat_norm

    genes = gene_columns(harmonized_expression)
    values = harmonized_expression[genes]
    cohorts = harmonized_expression[COHORT]
    measured = _measured(values, cohorts)
    # Genes constant within any cohort break ComBat's per-batch variance: keep them as is.
    sd = values.groupby(cohorts.to_numpy()).std(ddof=0)
    variable = (sd.gt(1e-8) | ~measured).all(axis=0) & measured.sum(axis=0).ge(2)
    out = harmonized_expression.copy()
    fitted = 0
    # One ComBat per presence pattern (the set of cohorts that measure a gene): each gene is
    # corrected across the cohorts that have it, unmeasured genes stay NaN.
    patterns = measured.T.apply(lambda col: tuple(col.index[col.to_numpy()]), axis=1)
    for pattern, group in patterns.groupby(patterns):
        fit_genes = [g for g in group.index if variable[g]]
        if not fit_genes:
            continue
        rows = cohorts.isin(pattern).to_numpy()
        corrected = pycombat_norm(
            values.loc[rows, fit_genes].T.to_numpy(),
            cohorts[rows].tolist(),
            par_prior=combat.parametric,
        )
        out.loc[rows, fit_genes] = np.asarray(corrected).T
        fitted += len(fit_genes)
    logger.info(
        "ComBat adjusted %d genes in %d presence patterns (%d left as is)",
        fitted,
        patterns.nunique(),
        len(genes) - fitted,
    )
    return out


def _joined(clin: pd.DataFrame, column: str) -> str:
    return ", ".join(sorted(clin[column].dropna().astype(str).unique())) if column in clin else ""


def summarize_cohorts(
    harmonized_expression: pd.DataFrame,
    clinical_table: pd.DataFrame,
    ingestion_report: pd.DataFrame,
    panel_coverage: pd.DataFrame,
    params: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per cohort: cancer, therapy, arms, counts under both label rules, genes on file and,
    per model panel, the genes used and missing; plus headline metrics."""
    config = HarmonizationConfig.of(params, "params:harmonization")
    rows = []
    report = ingestion_report.set_index("cohort")
    coverage = panel_coverage.set_index(["cohort", "panel"])
    panels = list(dict.fromkeys(panel_coverage["panel"]))
    for cohort, group in harmonized_expression.groupby(COHORT, sort=True):
        clin = clinical_table[clinical_table[COHORT] == cohort]
        strict = response_labels(clin, config.recist_labels, "response_recist")
        from_recist = 0
        if config.label == "response":  # the harmonized labels recist gave (response empty)
            labelled = group.set_index(SAMPLE_KEY)[LABEL].notna()
            empty = clin.set_index(SAMPLE_KEY)["response"].isna()
            from_recist = int((empty & labelled.reindex(empty.index, fill_value=False)).sum())
        if from_recist:
            logger.info(
                "%s: %d label(s) from recist where response is empty (harmonization.recist_labels)",
                cohort,
                from_recist,
            )
        row = {
            "cohort": cohort,
            "cancer": _joined(clin, "cancer_type"),
            "therapy": _joined(clin, "treatment"),
            "arms": _joined(clin, "study_arm"),
            "n_samples": len(group),
            "n_R": int((group[LABEL] == 1).sum()),
            "n_NR": int((group[LABEL] == 0).sum()),
            "n_unlabelled": int(group[LABEL].isna().sum()),
            "n_labelled_from_recist": from_recist,
            "n_R_recist": int((strict == 1).sum()),
            "n_NR_recist": int((strict == 0).sum()),
            "n_genes_on_file": int(report.loc[cohort, "n_genes"]),
            "n_missing_values_imputed": int(report.loc[cohort, "n_missing_values"]),
        }
        for panel in panels:
            cov = coverage.loc[(cohort, panel)]
            row[f"{panel}_genes_used"] = int(cov["n_present"])
            row[f"{panel}_genes_missing"] = int(cov["n_missing"])
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary["label_rule"] = config.label
    summary["standardization"] = (
        "per-cohort z-score on all of the cohort's samples (label-free, transductive)"
    )
    summary["combat"] = (
        "inmoose pycombat_norm per gene-presence pattern (label-free, transductive)"
        if config.combat.enabled
        else "off"
    )
    totals = summary[["n_samples", "n_R", "n_NR", "n_unlabelled"]].sum()
    metrics = {
        "n_cohorts": {"value": float(len(summary)), "step": 0},
        "n_samples": {"value": float(totals["n_samples"]), "step": 0},
        "n_responders": {"value": float(totals["n_R"]), "step": 0},
        "n_non_responders": {"value": float(totals["n_NR"]), "step": 0},
        "n_unlabelled": {"value": float(totals["n_unlabelled"]), "step": 0},
        "n_common_genes": {
            "value": float(coverage.xs(PANEL_COMMON, level="panel")["n_panel"].iloc[0]),
            "step": 0,
        },
    }
    return summary, metrics
