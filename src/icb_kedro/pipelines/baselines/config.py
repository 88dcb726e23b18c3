"""Typed ``params:baselines``: the model lives next to the algorithms that read it
(:mod:`icb_kedro.models.baselines.parameters`); this module registers it for the run-start check
(``hooks.typed_parameters``) and is the pipeline's import point."""

from __future__ import annotations

from icb_kedro.config import Config
from icb_kedro.models.baselines.parameters import (  # noqa: F401 (re-exported)
    AmuHoldout,
    BaselinesConfig,
    BaselinesEvaluation,
    GridRange,
    InnerCv,
    ModelConfig,
    Registry,
    Signatures,
    Threshold,
)

# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"baselines": BaselinesConfig}
