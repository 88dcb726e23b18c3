"""The shared evaluation layer: every model is scored on the same folds with the same statistics.

- :mod:`~icb_kedro.evaluation.protocols`: transfer / loco / within / amu_holdout folds as views of
  the fold tables.
- :mod:`~icb_kedro.evaluation.metrics`: per-fold metrics and training-set thresholds.
- :mod:`~icb_kedro.evaluation.statistics`: patient-level bootstrap CIs, DeLong tests, cohort
  combination, BH (public import point for :mod:`~icb_kedro.evaluation.bootstrap`,
  :mod:`~icb_kedro.evaluation.delong` and :mod:`~icb_kedro.evaluation.combination`).
- :mod:`~icb_kedro.evaluation.summary`: predictions -> fold / cohort / overall / comparison tables
  and markdown (public import point for :mod:`~icb_kedro.evaluation.predictions`,
  :mod:`~icb_kedro.evaluation.cohort_tables`, :mod:`~icb_kedro.evaluation.comparisons` and
  :mod:`~icb_kedro.evaluation.markdown_report`).
"""

from icb_kedro.evaluation import metrics, protocols, statistics, summary

__all__ = ["metrics", "protocols", "statistics", "summary"]
