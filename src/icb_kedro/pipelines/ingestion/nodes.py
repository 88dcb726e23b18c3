"""Nodes of the ingestion pipeline: read, validate and type every cohort found on disk."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from icb_kedro.io.readers import (
    check_samples_match,
    load_partition,
    parse_amu_matrix,
    parse_clinical,
    parse_expression,
)
from icb_kedro.io.validation import InputDataError, check_gene_overlap
from icb_kedro.paths import CLINICAL_SUFFIX, EXPRESSION_SUFFIX

from .config import IngestionConfig

logger = logging.getLogger(__name__)


def select_cohorts(
    found_expression: list[str], found_clinical: list[str], wanted: list[str] | None, folder: str
) -> list[str]:
    """Cohorts to ingest: every complete file pair found, or the configured subset."""
    expr, clin = set(found_expression), set(found_clinical)
    if expr - clin:
        missing = [f"{folder}/{c}{CLINICAL_SUFFIX}" for c in sorted(expr - clin)]
        raise InputDataError(f"missing clinical file(s) for expression file(s): {missing}")
    if clin - expr:
        missing = [f"{folder}/{c}{EXPRESSION_SUFFIX}" for c in sorted(clin - expr)]
        raise InputDataError(f"missing expression file(s) for clinical file(s): {missing}")
    if not expr:
        raise InputDataError(f"no '*{EXPRESSION_SUFFIX}' cohort files found in {folder}")
    if wanted:
        unknown = sorted(set(wanted) - expr)
        if unknown:
            raise InputDataError(
                f"ingestion.cohorts names cohort(s) with no files in {folder}: {unknown}"
            )
        return sorted(wanted)
    return sorted(expr)


def ingest_cohorts(
    raw_expression: Mapping[str, Callable[[], pd.DataFrame]],
    raw_clinical: Mapping[str, Callable[[], pd.DataFrame]],
    params: dict[str, Any],
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame], pd.DataFrame]:
    """Validate every cohort pair and return typed expression/clinical partitions + a report.

    Expression comes out gene-major, as on disk (``gene`` + one float64 column per sample,
    still log2(TPM+0.001); harmonization changes the scale). A full transcriptome is ~20,000
    genes x 100 samples: stored gene-major, its parquet is written/read ~18x faster than the
    sample-major table with 20,000 columns (0.1 s vs 1.9 s for Liu2019).
    """
    config = IngestionConfig.of(params, "params:ingestion")
    folder = str(Path(config.data_dir) / "cohorts")
    requested = list(config.cohorts) if config.cohorts is not None else None
    cohorts = select_cohorts(list(raw_expression), list(raw_clinical), requested, folder)
    logger.info("reading %d cohort(s) from %s (ICB_DATA_DIR)", len(cohorts), folder)
    policy = config.missing_values.policy
    expression_out, clinical_out, report_rows = {}, {}, []
    for cohort in cohorts:
        expr_src = f"{folder}/{cohort}{EXPRESSION_SUFFIX}"
        clin_src = f"{folder}/{cohort}{CLINICAL_SUFFIX}"
        expression, missing_report = parse_expression(
            load_partition(raw_expression[cohort], expr_src),
            expr_src,
            policy,
            scale_check=config.scale_check,
        )
        clinical = parse_clinical(load_partition(raw_clinical[cohort], clin_src), clin_src)
        check_samples_match(expression, clinical, expr_src, clin_src)
        clinical = clinical.set_index("sample_id").loc[expression.index].reset_index()
        labelled = clinical["response"].notna() | clinical.get(
            "recist", pd.Series(dtype=object)
        ).isin(list(config.recist_labels))
        if not labelled.any():
            raise InputDataError(
                f"{clin_src}: cohort {cohort!r} has no labelled sample "
                "(column 'response' is empty everywhere)"
            )
        expression_out[cohort] = expression.T.rename_axis("gene").reset_index()
        clinical_out[cohort] = clinical
        report_rows.append(
            {
                "cohort": cohort,
                "expression_file": expr_src,
                "clinical_file": clin_src,
                "n_samples": len(expression),
                "n_genes": expression.shape[1],
                **missing_report,
            }
        )
        logger.info(
            "ingested %s: %d samples x %d genes", cohort, len(expression), expression.shape[1]
        )
    check_gene_overlap(
        {c: table["gene"] for c, table in expression_out.items()},
        {c: f"{folder}/{c}{EXPRESSION_SUFFIX}" for c in expression_out},
        config.min_gene_overlap,
    )
    return expression_out, clinical_out, pd.DataFrame(report_rows)


def ingest_amu_matrix(raw: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """The AMU study matrix (constituent ratios, 0/1 label) with synthetic sample keys."""
    config = IngestionConfig.of(params, "params:ingestion")
    return parse_amu_matrix(raw, str(Path(config.data_dir) / config.amu_file))


def ingest_gene_list(raw: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """A one-gene-per-line panel file (the IC2Bert 983-gene prior) -> ``gene`` column."""
    config = IngestionConfig.of(params, "params:ingestion")
    source = str(Path(config.data_dir) / config.ic2bert_prior_file)
    genes = raw.iloc[:, 0].astype(str).str.strip()
    genes = genes[genes != ""]
    if genes.empty:
        raise InputDataError(
            f"{source}: lists no gene (one gene symbol per line expected); "
            f"the {source!r} panel would be empty"
        )
    dup = genes[genes.duplicated()].tolist()
    if dup:
        raise InputDataError(f"{source}: duplicate gene(s) {dup[:10]}")
    return pd.DataFrame({"gene": genes.to_numpy()})
