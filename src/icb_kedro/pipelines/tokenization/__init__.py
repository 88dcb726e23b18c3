"""tokenization: per-fold quantile tokenizers fitted on the pretraining pool, frozen."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
