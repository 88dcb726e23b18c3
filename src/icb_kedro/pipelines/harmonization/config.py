"""Typed ``params:harmonization`` (conf/base/parameters_harmonization.yml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from icb_kedro.config import Config


class PanelSpec(Config):
    """One gene panel (``icb_kedro.panels`` checks the values against the cohorts):
    ``genes``: all | ic2bert_prior | amu160 | a list; ``present_in``: all | N |
    {at_least: N} | {all_but: K} | {all_but: [cohort, ...]} (null keys ignored)."""

    genes: str | list[str] = "all"
    present_in: Literal["all"] | int | dict[str, int | list[str] | None] = "all"


class Combat(Config):
    """``harmonization.combat``: label-free ComBat across cohorts (inmoose), or off."""

    enabled: bool = True
    parametric: bool = True  # empirical-Bayes parametric priors (ComBat's default)


class HarmonizationConfig(Config):
    """``params:harmonization``: the label rule, the gene panels, ComBat.

    ``panels: null`` keeps ``icb_kedro.panels``' defaults (common / ic2bert_prior / amu160).
    """

    label: Literal["response", "response_recist"] = "response"
    recist_labels: dict[str, int] = {}
    # Two samples this correlated are one sample twice (io.validation.check_duplicate_samples)
    duplicate_correlation: float = Field(0.999, gt=0.0, le=1.0)
    panels: dict[str, PanelSpec] | None = None
    combat: Combat = Combat()

    def panel_specs(self) -> dict[str, dict] | None:
        """The panels as the plain mapping ``panels.build_panels`` reads."""
        return None if self.panels is None else {k: v.model_dump() for k, v in self.panels.items()}


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"harmonization": HarmonizationConfig}
