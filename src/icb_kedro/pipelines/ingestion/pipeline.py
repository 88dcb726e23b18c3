"""ingestion pipeline: every cohort pair in the data directory, the AMU matrix,
the IC2Bert panel."""

from kedro.pipeline import Node, Pipeline

from .nodes import ingest_amu_matrix, ingest_cohorts, ingest_gene_list


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                ingest_cohorts,
                inputs=["raw_cohort_expression", "raw_cohort_clinical", "params:ingestion"],
                outputs=["cohort_expression", "cohort_clinical", "ingestion_report"],
                name="ingest_cohorts",
            ),
            Node(
                ingest_amu_matrix,
                inputs=["raw_amu_matrix", "params:ingestion"],
                outputs="amu_matrix",
                name="ingest_amu_matrix",
            ),
            Node(
                ingest_gene_list,
                inputs=["raw_ic2bert_prior_genes", "params:ingestion"],
                outputs="ic2bert_prior_genes",
                name="ingest_ic2bert_prior_genes",
            ),
        ]
    )
