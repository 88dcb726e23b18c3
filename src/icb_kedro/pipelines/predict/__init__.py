"""predict: score a new cohort's expression file with a registered IC2Bert model."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
