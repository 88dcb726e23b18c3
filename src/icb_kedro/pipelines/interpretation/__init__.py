"""Interpretation pipeline: SHAP, IC2Bert importance, AMU embeddings, enrichment,
survival, report."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
