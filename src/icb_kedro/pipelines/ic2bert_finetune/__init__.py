"""ic2bert_finetune: transfer / zero-shot / ensemble / within / sample-size
(includes its upstream)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
