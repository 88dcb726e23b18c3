"""Per-model gene panels and their missing-gene policy (configuration: ``harmonization.panels``).

Twelve cohorts carry full transcriptomes and one (Mariathasan2018) a 1,768-gene panel, so a
model panel is no longer "the genes every cohort has": each panel is declared in config as

    <panel name>:
      genes: all | ic2bert_prior | amu160 | [GENE, ...]   # the requested genes, in order
      present_in: all | N | {at_least: N} | {all_but: K} | {all_but: [cohort, ...]}

``present_in`` keeps a requested gene if it is measured in every cohort (``all``), in at least
``N`` cohorts, in all but at most ``K`` cohorts, or in every cohort except the named ones.
Parameters are soft-merged across config environments (``settings.py``), so a mapping rule
keeps conf/base's keys: an environment switching rules sets the other key to null, e.g.
``{all_but: null, at_least: 1}``; keys set to null are ignored.
A cohort that lacks some genes of a panel keeps its place in the study: the harmonized
table holds those genes as NaN for that cohort (never a number made up here), and each
model says what it does with them (IC2Bert: a [MISSING] token; AMU and the baselines:
training-row imputation; signatures: the genes the cohort has). ``panel_coverage`` lists,
per panel and cohort, the genes used, missing (by name) and how they are handled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY

GENE_SOURCES = ("all", "ic2bert_prior", "amu160")

# The default declaration (conf/base/parameters_harmonization.yml says the same).
DEFAULT_PANELS: dict[str, dict[str, Any]] = {
    "common": {"genes": "all", "present_in": "all"},
    "ic2bert_prior": {"genes": "ic2bert_prior", "present_in": {"all_but": 1}},
    "amu160": {"genes": "amu160", "present_in": {"all_but": 1}},
}


def _requested_genes(
    spec: Mapping[str, Any],
    named_lists: Mapping[str, Sequence[str]],
    per_cohort: Mapping[str, set[str]],
    panel: str,
) -> list[str]:
    genes = spec.get("genes", "all")
    if isinstance(genes, str):
        if genes == "all":
            return sorted(set.union(*per_cohort.values()))
        if genes not in named_lists:
            raise ValueError(
                f"harmonization.panels.{panel}.genes: unknown gene list {genes!r}; use one of "
                f"{GENE_SOURCES} or a list"
            )
        return list(named_lists[genes])
    if not isinstance(genes, Sequence) or not genes:
        raise ValueError(
            f"harmonization.panels.{panel}.genes must be a gene-list name or a non-empty list, "
            f"got {genes!r}"
        )
    return [str(g) for g in genes]


def _min_cohorts(
    spec: Mapping[str, Any], cohorts: Sequence[str], panel: str
) -> tuple[int, set[str]]:
    """(minimum number of cohorts a gene must be in, cohorts exempt from the rule)."""
    present_in = spec.get("present_in", "all")
    n = len(cohorts)
    if present_in == "all":
        return n, set()
    if isinstance(present_in, int) and not isinstance(present_in, bool):
        if not 1 <= present_in <= n:
            raise ValueError(
                f"harmonization.panels.{panel}.present_in: {present_in} is not between 1 and "
                f"the {n} cohorts"
            )
        return present_in, set()
    if isinstance(present_in, Mapping):
        present_in = {
            k: v for k, v in present_in.items() if v is not None
        }  # null: a base key switched off
        if set(present_in) == {"at_least"}:
            return _min_cohorts({"present_in": present_in["at_least"]}, cohorts, panel)
    if isinstance(present_in, Mapping) and set(present_in) == {"all_but"}:
        allowed = present_in["all_but"]
        if isinstance(allowed, int) and not isinstance(allowed, bool):
            if not 0 <= allowed < n:
                raise ValueError(
                    f"harmonization.panels.{panel}.present_in.all_but: {allowed} must be in "
                    f"[0, {n - 1}]"
                )
            return n - allowed, set()
        if isinstance(allowed, Sequence) and not isinstance(allowed, str):
            exempt = {str(c) for c in allowed} & set(
                cohorts
            )  # names not ingested: nothing to exempt
            return n - len(exempt), exempt
    raise ValueError(
        f"harmonization.panels.{panel}.present_in must be 'all', an integer, {{at_least: N}}, "
        f"{{all_but: K}} or {{all_but: [cohorts]}}, got {present_in!r}"
    )


def select_panel(
    spec: Mapping[str, Any],
    named_lists: Mapping[str, Sequence[str]],
    per_cohort: Mapping[str, set[str]],
    panel: str,
) -> tuple[list[str], list[str]]:
    """(kept genes in the requested order, requested genes that were dropped by ``present_in``)."""
    requested = list(dict.fromkeys(_requested_genes(spec, named_lists, per_cohort, panel)))
    cohorts = sorted(per_cohort)
    minimum, exempt = _min_cohorts(spec, cohorts, panel)
    judged = [c for c in cohorts if c not in exempt]
    kept, dropped = [], []
    for gene in requested:
        if exempt:
            ok = all(gene in per_cohort[c] for c in judged)
        else:
            ok = sum(gene in per_cohort[c] for c in cohorts) >= minimum
        (kept if ok else dropped).append(gene)
    if not kept:
        raise ValueError(
            f"gene panel {panel!r} is empty: none of its {len(requested)} genes passes "
            f"present_in={spec.get('present_in', 'all')!r}"
        )
    return kept, dropped


def build_panels(
    panels_config: Mapping[str, Mapping[str, Any]] | None,
    named_lists: Mapping[str, Sequence[str]],
    per_cohort: Mapping[str, set[str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``gene_panels`` (panel, gene, n_cohorts) and ``panel_coverage`` (panel x cohort).

    ``panel_coverage`` columns: panel, cohort, n_requested, n_panel (genes kept),
    n_present (kept genes the cohort measures), n_missing, missing_genes (comma list).
    """
    config = dict(panels_config or DEFAULT_PANELS)
    if "common" not in config:
        raise ValueError(
            "harmonization.panels must declare a 'common' panel (the baselines', signatures' and "
            "plots' default)"
        )
    rows, coverage = [], []
    for panel, spec in config.items():
        kept, _ = select_panel(spec or {}, named_lists, per_cohort, panel)
        requested = len(dict.fromkeys(_requested_genes(spec or {}, named_lists, per_cohort, panel)))
        n_cohorts = [sum(g in genes for genes in per_cohort.values()) for g in kept]
        rows.append(pd.DataFrame({"panel": panel, "gene": kept, "n_cohorts": n_cohorts}))
        for cohort, present in sorted(per_cohort.items()):
            missing = [g for g in kept if g not in present]
            coverage.append(
                {
                    "panel": panel,
                    "cohort": cohort,
                    "n_requested": requested,
                    "n_panel": len(kept),
                    "n_present": len(kept) - len(missing),
                    "n_missing": len(missing),
                    "missing_genes": ",".join(missing),
                }
            )
    return pd.concat(rows, ignore_index=True), pd.DataFrame(coverage)


def panel_genes(gene_panels: pd.DataFrame, panel: str) -> list[str]:
    """The genes of ``panel`` in panel order; a clear error for an unknown or empty panel."""
    genes = gene_panels.loc[gene_panels["panel"] == panel, "gene"].tolist()
    if not genes:
        raise ValueError(
            f"gene panel {panel!r} is empty or unknown; gene_panels has "
            f"{sorted(gene_panels['panel'].unique())}"
        )
    return genes


def missing_by_cohort(
    table: pd.DataFrame, genes: Sequence[str], cohort_column: str = "cohort"
) -> dict[str, list[str]]:
    """Per cohort, the genes of ``genes`` that are NaN for every one of its samples (not
    measured)."""
    absent = table[list(genes)].isna().groupby(table[cohort_column]).all()
    return {cohort: [g for g, flag in row.items() if flag] for cohort, row in absent.iterrows()}


def select_panel_features(
    expression: pd.DataFrame, gene_panels: pd.DataFrame, panel: str
) -> pd.DataFrame:
    """``sample_key``, ``cohort``, ``label`` + the genes of ``panel`` (in ``gene_panels`` order)."""
    genes = gene_panels.loc[gene_panels["panel"] == panel, "gene"].tolist()
    if not genes:
        raise ValueError(
            f"gene panel {panel!r} is empty or unknown; panels: "
            f"{sorted(gene_panels['panel'].unique())}"
        )
    missing = [g for g in genes if g not in expression.columns]
    if missing:
        raise ValueError(
            f"gene panel {panel!r}: {len(missing)} genes are not expression columns, "
            f"e.g. {missing[:5]}"
        )
    if expression[SAMPLE_KEY].duplicated().any():
        raise ValueError("expression table has duplicated sample_key values")
    return expression[[SAMPLE_KEY, COHORT, LABEL, *genes]].reset_index(drop=True)
