"""amu pipeline: AMU (PaddlePaddle) scored on the AMU study splits and the LODOCV protocols."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
