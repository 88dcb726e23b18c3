"""folds: LODOCV folds (held-out cohort x trial) and the AMU hold-out splits, as data."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
