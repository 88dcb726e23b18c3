"""Typed ``params:predict`` (conf/base/parameters_predict.yml)."""

from __future__ import annotations

from icb_kedro.config import Config


class PredictConfig(Config):
    """``params:predict``: which registered model scores which expression file.

    ``model_uri`` wins; else ``model`` (ic2bert | amu | baseline; IC2Bert: the one of
    ``held_out``) at ``model_version``, else at ``model_alias``, else the latest.
    ``input_layout``: gene_major | sample_major; ``input_scale``: log2_tpm_milli |
    log2_tpm1 (the node checks both choices and names the allowed values).
    """

    model_uri: str | None = None
    model: str | None = "ic2bert"  # null: ic2bert
    held_out: str | None = None
    model_version: int | str | None = None
    model_alias: str | None = None  # conf/base: champion
    input_path: str | None = None
    input_layout: str = "gene_major"
    input_scale: str = "log2_tpm_milli"
    scale_check: bool = True


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"predict": PredictConfig}
