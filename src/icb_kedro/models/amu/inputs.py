"""What the AMU protocols fit on: labels, the gene panel and the cohorts' feature tables.

Feature choice for the cohorts (``amu.cohorts.expression``): by default
``harmonized_expression`` (log2(TPM+1)) restricted to the panel, turned back into TPM,
rescaled to constituent ratios over the panel genes and logged, i.e. AMU's own encoding
(spec 1.2, with spec 3.3's fix). It is computed per sample, so it needs no fitting and
carries no cross-sample (transductive) step; per-gene standardisation is then fitted on
each fold's training rows. ``expression_standardized`` (per-cohort z-scores over all of a
cohort's samples, label-free but transductive) is the configurable alternative. Cohorts that
lack panel genes are left out (:func:`amu_cohorts_left_out`). Imports nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY

logger = logging.getLogger(__name__)

# amu.cohorts.expression -> (input scale of models.amu.features)
EXPRESSION_SCALES = {"harmonized_expression": "log2_tpm1", "expression_standardized": "zscore"}


def sample_labels(frame: pd.DataFrame) -> pd.Series:
    """The label column indexed by sample key."""
    return frame.set_index(SAMPLE_KEY)[LABEL]


def network_config(model: Mapping[str, Any] | None, n_genes: int) -> dict[str, Any]:
    """The network settings (``amu.model``) with the number of input genes."""
    return {**(model or {}), "n_genes": n_genes}


def panel_genes(gene_panels: pd.DataFrame, panel: str) -> list[str]:
    genes = gene_panels.loc[gene_panels["panel"] == panel, "gene"].tolist()
    if not genes:
        raise ValueError(
            f"gene panel {panel!r} is empty or unknown; panels: "
            f"{sorted(gene_panels['panel'].unique())}"
        )
    return genes


def amu_cohorts_left_out(table: pd.DataFrame, genes: list[str]) -> dict[str, list[str]]:
    """Cohorts that lack some of AMU's panel genes, with the genes they lack.

    AMU's missing-gene policy (deliberate): such a cohort is left out of AMU's cross-cohort
    protocols (as training rows and as a held-out cohort), with the reason logged. Its
    encoding is a constituent ratio over the panel: over a different gene set the ratios
    mean something else, and imputing half the panel (Mariathasan2018 has 78 of the 159)
    would make most of its input up.
    """
    from icb_kedro.panels import missing_by_cohort

    return {c: missing for c, missing in missing_by_cohort(table, genes, COHORT).items() if missing}


def cohort_features(
    harmonized_expression: pd.DataFrame,
    expression_standardized: pd.DataFrame,
    gene_panels: pd.DataFrame,
    source: str,
    panel: str,
    pseudo_count: float,
) -> tuple[pd.DataFrame, pd.Series, list[str], str]:
    """(features indexed by sample_key, labels, genes, input scale) for the cohorts that
    measure every panel gene (the others: ``amu_cohorts_left_out``).

    ``source`` is ``amu.cohorts.expression`` (a key of :data:`EXPRESSION_SCALES`), ``panel``
    the gene panel's name in ``gene_panels``."""
    from icb_kedro.models.amu.features import amu_features

    if source not in EXPRESSION_SCALES:
        raise ValueError(
            f"amu.cohorts.expression must be one of {sorted(EXPRESSION_SCALES)}, got {source!r}"
        )
    table = harmonized_expression if source == "harmonized_expression" else expression_standardized
    genes = panel_genes(gene_panels, panel)
    left_out = amu_cohorts_left_out(table, genes)
    for cohort, missing in left_out.items():
        logger.warning(
            "AMU leaves out cohort %s: it lacks %d of the %d panel genes (e.g. %s); "
            "AMU's ratio encoding needs all of them",
            cohort,
            len(missing),
            len(genes),
            ", ".join(missing[:5]),
        )
    table = table[~table[COHORT].isin(list(left_out))]
    scale = EXPRESSION_SCALES[source]
    values = amu_features(table, genes, scale, pseudo_count)
    features = pd.DataFrame(values, index=table[SAMPLE_KEY].to_numpy(), columns=genes)
    return features, sample_labels(table), genes, scale
