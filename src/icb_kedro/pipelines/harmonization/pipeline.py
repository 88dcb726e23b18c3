"""harmonization pipeline: one scale, labels, gene panels, cohort-effect corrections, summary."""

from kedro.pipeline import Node, Pipeline

from icb_kedro.reporting.study_plots import plot_panel_coverage, plot_pca_before_after

from .nodes import (
    build_gene_panels,
    build_harmonized_expression,
    combat_correct,
    standardize_per_cohort,
    summarize_cohorts,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_harmonized_expression,
                inputs=[
                    "cohort_expression",
                    "cohort_clinical",
                    "gene_panels",
                    "params:harmonization",
                ],
                outputs=["harmonized_expression", "clinical_table"],
                name="build_harmonized_expression",
            ),
            Node(
                build_gene_panels,
                inputs=[
                    "cohort_expression",
                    "ic2bert_prior_genes",
                    "amu_matrix",
                    "params:harmonization",
                ],
                outputs=["gene_panels", "panel_coverage"],
                name="build_gene_panels",
            ),
            Node(
                standardize_per_cohort,
                "harmonized_expression",
                "expression_standardized",
                name="standardize_per_cohort",
            ),
            Node(
                combat_correct,
                inputs=["harmonized_expression", "params:harmonization.combat"],
                outputs="expression_combat",
                name="combat_correct",
            ),
            Node(
                summarize_cohorts,
                inputs=[
                    "harmonized_expression",
                    "clinical_table",
                    "ingestion_report",
                    "panel_coverage",
                    "params:harmonization",
                ],
                outputs=["cohort_summary", "harmonization_metrics"],
                name="summarize_cohorts",
            ),
            Node(
                plot_panel_coverage,
                "panel_coverage",
                "panel_coverage_plot",
                name="plot_panel_coverage",
            ),
            Node(
                plot_pca_before_after,
                inputs=["harmonized_expression", "expression_standardized", "expression_combat"],
                outputs="harmonization_pca_plot",
                name="plot_pca_before_after",
            ),
        ]
    )
