"""What the study report's sections read (``StudyInputs``) and small helpers they share."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from icb_kedro.reporting.report import Block, Image, NotRun


@dataclass
class StudyInputs:
    """Everything the study report shows; ``None`` = that analysis was not run."""

    cohort_summary: pd.DataFrame | None = None
    pca_figure: Figure | None = None
    coverage_figure: Figure | None = None
    predictions: pd.DataFrame | None = None
    cohort_table: pd.DataFrame | None = None
    overall: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    meta: pd.DataFrame | None = (
        None  # evaluation.meta_analysis: random-effects pool per (model, protocol)
    )
    calibration: pd.DataFrame | None = (
        None  # evaluation.calibration: Brier decomposition, slope per scope
    )
    evaluation_markdown: str | None = None
    evaluation_source: str = ""
    pretrain_history: pd.DataFrame | None = None
    sample_size: pd.DataFrame | None = None
    learning_summary: pd.DataFrame | None = None
    amu_learning: pd.DataFrame | None = None  # amu_learning_check: one row per AMU fit
    shap_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    rankings: pd.DataFrame | None = None
    overlap: pd.DataFrame | None = None
    stability: pd.DataFrame | None = None  # shap_analysis.top_k_stability per (protocol, model)
    ic2bert_importance: pd.DataFrame | None = None
    ic2bert_frequency: pd.DataFrame | None = None
    embedding_map: pd.DataFrame | None = None
    embedding_pairs: pd.DataFrame | None = None
    embedding_summary: pd.DataFrame | None = None
    embedding_cosine: pd.DataFrame | None = None
    enrichment: pd.DataFrame | None = None
    cox: pd.DataFrame | None = None
    cox_null: pd.DataFrame | None = None  # survival.random_gene_null per endpoint
    km: pd.DataFrame | None = None
    km_figures: dict[str, Figure] = field(default_factory=dict)
    not_run: dict[str, str] = field(default_factory=dict)


SETTING_TITLES = {
    "study": (
        "AMU study setting (207 melanoma samples, the paper's 160 genes; amu_holdout test splits)"
    ),
    "cohorts": (
        "The cohorts (SVM/XGBoost/AMU: each cohort held out in turn; IC2Bert: its fine-tuned "
        "transfer test split)"
    ),
}


PROTOCOL_TITLES = {
    "amu_holdout": "AMU study setting (207 melanoma samples, 160 genes, held-out 20% splits)",
    "loco": (
        "Every cohort held out in turn (leave-one-cohort-out): trained on the other cohorts only"
    ),
    "transfer": (
        "Transfer, out of fold: trained on the other cohorts + 4 of 5 stratified folds of the "
        "held-out cohort (IC2Bert: its readout on those folds), every patient of the held-out "
        "cohort scored once per repeat"
    ),
    "within": (
        "Within-cohort, out of fold: 4 of 5 stratified folds of the held-out cohort, every "
        "patient scored once per repeat"
    ),
    "transfer_paper": (
        "Transfer on the IC2Bert paper's stratified 80/20 splits (kept to compare with the "
        "paper; 3-8 test patients in most cohorts)"
    ),
}


def present(frame: pd.DataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def safe_figure(name: str, draw, caption: str) -> Block:
    """Draw a figure; a drawing error becomes a visible NotRun block naming the cause."""
    try:
        return Image(name, draw(), caption)
    except ValueError as error:
        return NotRun(caption, f"figure could not be drawn: {error}")
