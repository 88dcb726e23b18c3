"""baselines: classical models and published gene signatures on the shared LODOCV / AMU folds."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
