"""``evaluation.summary`` and ``evaluation.statistics`` stay the public import points.

Their code lives in smaller modules (``predictions``, ``cohort_tables``, ``comparisons``,
``markdown_report``; ``bootstrap``, ``delong``, ``combination``); the facades must keep
re-exporting the very same objects that the pipelines, reporting and grid code import.
"""

import importlib

import pytest

from icb_kedro.evaluation import statistics, summary

SUMMARY_HOMES = {
    "predictions": ["COHORT_KEYS", "FOLD_KEYS", "validate_predictions"],
    "cohort_tables": [
        "COHORT_SUMMARY_COLUMNS",
        "OVERALL_SUMMARY_COLUMNS",
        "CohortBootstrap",
        "cohort_bootstrap",
        "cohort_summary",
        "fold_metrics",
        "overall_from_bootstrap",
        "overall_summary",
    ],
    "comparisons": [
        "ALL_COHORTS",
        "COMPARISON_COLUMNS",
        "combine_differences_random_effects",
        "paired_comparisons",
    ],
    "markdown_report": ["CAVEAT", "short_cohort_names", "summary_markdown"],
}
STATISTICS_HOMES = {
    "bootstrap": [
        "RESAMPLE_SCHEMES",
        "BootstrapCI",
        "PairedBootstrapResult",
        "SeedLike",
        "bootstrap_auroc_ci",
        "bootstrap_auroc_replicates",
        "bootstrap_mean_auroc_ci",
        "paired_bootstrap_auroc_difference",
        "percentile_ci",
        "pooled_mean_ci",
    ],
    "delong": ["DeLongResult", "delong_covariance", "delong_test", "delong_test_over_trials"],
    "combination": ["CombinedResult", "bh_adjust", "combine_cohort_differences"],
}


@pytest.mark.parametrize(
    ("facade", "homes"), [(summary, SUMMARY_HOMES), (statistics, STATISTICS_HOMES)]
)
def test_facade_reexports_every_public_name(facade, homes):
    expected = sorted(name for names in homes.values() for name in names)
    assert sorted(facade.__all__) == expected
    for module_name, names in homes.items():
        home = importlib.import_module(f"icb_kedro.evaluation.{module_name}")
        for name in names:
            assert getattr(facade, name) is getattr(home, name), (module_name, name)
