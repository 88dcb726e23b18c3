"""ingestion: raw cohort files -> validated, typed parquet per cohort."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
