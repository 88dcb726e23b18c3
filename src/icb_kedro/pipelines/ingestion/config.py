"""Typed ``params:ingestion`` (conf/base/parameters_ingestion.yml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from icb_kedro.config import Config


class MissingValues(Config):
    """What a missing expression value does (``io.readers.MISSING_POLICIES``; ingestion never
    uses ``absent_genes``, the predict pipeline's policy)."""

    policy: Literal["error", "impute_gene_median", "impute_floor"] = "error"


class IngestionConfig(Config):
    """``params:ingestion``: where the files are and how strictly they are read.

    ``cohorts``: null = every cohort with both files in ``<data_dir>/cohorts``;
    ``min_gene_overlap``: the fraction of genes each cohort must share with the others;
    ``recist_labels``: RECIST best response -> 0/1 label.
    """

    data_dir: str
    cohorts: tuple[str, ...] | None = None
    amu_file: str = "amu/amu_melanoma_160genes.csv"
    ic2bert_prior_file: str = "ic2bert_prior_genes.txt"
    missing_values: MissingValues = MissingValues()
    scale_check: bool = True
    min_gene_overlap: float = Field(0.5, ge=0.0, le=1.0)
    recist_labels: dict[str, int] = {}


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"ingestion": IngestionConfig}
