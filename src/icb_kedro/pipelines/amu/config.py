"""Typed ``params:amu``: the model lives next to the algorithms that read it
(:mod:`icb_kedro.models.amu.parameters`); this module registers it for the run-start check
(``hooks.typed_parameters``) and is the pipeline's import point."""

from __future__ import annotations

from icb_kedro.config import Config
from icb_kedro.models.amu.parameters import (  # noqa: F401 (re-exported)
    AmuConfig,
    Cohorts,
    FinalModel,
    Network,
    Study,
    Summary,
    Train,
)

# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"amu": AmuConfig}
