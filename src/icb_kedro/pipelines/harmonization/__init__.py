"""harmonization: one expression scale, labels, gene panels, cohort effects."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
