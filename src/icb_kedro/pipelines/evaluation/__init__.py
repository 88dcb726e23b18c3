"""evaluation: every model's predictions on the same folds -> one results table,
summaries, paired tests."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
