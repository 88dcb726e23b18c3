"""ic2bert_pretrain: masked expression modelling per held-out cohort (includes its upstream)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
