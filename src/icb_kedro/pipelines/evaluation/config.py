"""Typed ``params:evaluation`` (conf/base/parameters_evaluation.yml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from icb_kedro.config import Config


class MetaAnalysis(Config):
    """Random-effects pooling of AUROC across cohorts (``evaluation.meta_analysis``):
    ``dl`` = DerSimonian-Laird (PredictIO's choice), ``pm`` = Paule-Mandel."""

    method: Literal["dl", "pm"] = "dl"


class Calibration(Config):
    """Quantile bins of the predicted probabilities (reliability curves, Brier decomposition)."""

    n_bins: int = Field(10, ge=2)


class EvaluationConfig(Config):
    """``params:evaluation``: bootstrap CIs, paired comparisons against the reference models."""

    n_boot: int = Field(1000, ge=1)
    seed: int = 0
    reference_models: tuple[str, ...] = ("ic2bert", "amu", "logreg")
    meta_analysis: MetaAnalysis = MetaAnalysis()
    calibration: Calibration = Calibration()


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"evaluation": EvaluationConfig}
