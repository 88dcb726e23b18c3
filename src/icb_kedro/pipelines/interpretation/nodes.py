"""interpretation pipeline nodes: the node functions, each defined with its algorithm.

The nodes live beside the algorithms they call (``icb_kedro.interpretation.*`` and
``icb_kedro.reporting.study``), so each is testable without Kedro; this module is the one
place the pipeline takes them from.

Leak-free by construction: every attribution is computed on the TEST rows of a stored
fold (``lodocv_folds`` / ``amu_holdout_folds``), with a model fitted on that fold's
training rows only and a SHAP background drawn from those training rows.

Inputs produced by other pipelines are read under their real names through writable
``OptionalDataset`` entries and may be ``None``: the analysis that needs them is then
listed as "not run" in the report instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from icb_kedro.interpretation.explain_amu import (
    analyse_amu_embeddings,
    explain_amu_cohorts,
    explain_amu_study,
)
from icb_kedro.interpretation.explain_baselines import explain_baseline
from icb_kedro.interpretation.explain_ic2bert import explain_ic2bert, ic2bert_top_k_frequency
from icb_kedro.interpretation.outcomes import (
    cox_random_gene_null,
    cox_top_genes,
    enrich_top_genes,
    km_summary,
    parse_signature_sets,
)
from icb_kedro.interpretation.shap_tables import rank_genes, shap_stability, top_gene_overlap
from icb_kedro.reporting.study import study_report

from .config import InterpretationConfig

__all__ = [
    "analyse_amu_embeddings",
    "build_report",
    "cox_random_gene_null",
    "cox_top_genes",
    "enrich_top_genes",
    "explain_amu_cohorts",
    "explain_amu_study",
    "explain_baseline",
    "explain_ic2bert",
    "ic2bert_top_k_frequency",
    "km_summary",
    "parse_signature_sets",
    "rank_genes",
    "shap_stability",
    "top_gene_overlap",
]


def build_report(params: Mapping[str, Any], **sources: Any) -> tuple[str, dict[str, Any]]:
    """The study report node: ``params:interpretation`` (typed) and one mapping of sources
    (``reporting.study.ReportSources``, as wired by the pipeline) -> HTML + its figures."""
    config = InterpretationConfig.of(params, "params:interpretation")
    return study_report(
        sources,
        title=config.report.title,
        top_k=config.report.top_k,
        dpi=config.report.dpi,
        n_boot=config.evaluation.n_boot,
        seed=config.evaluation.seed,
        survival=config.survival.model_dump(),
    )
