"""Do the top genes and the predictions matter for survival? (lifelines)

The analyses live in sibling modules, each documented there:

- ``survival_cox``: :func:`cox_per_gene`, one Cox proportional-hazards model per gene and
  endpoint (OS, PFS), **stratified by cohort**, on the within-cohort z-scored gene (HR per
  within-cohort SD, BH q per endpoint), and its forest plot :func:`plot_forest`;
- ``survival_null``: :func:`random_gene_null`, the selected (top SHAP) genes against as many
  random panel genes in the same Cox models (an empirical p free of the genes' selection);
- ``survival_km``: :func:`kaplan_meier_by_prediction`, KM curves of predicted responders vs
  non-responders with the pooled log-rank p and a cohort-stratified Cox HR;
- ``survival_data``: the endpoints and ``survival_frame`` (the per-endpoint table in months).

Samples without the endpoint (missing time or event) are excluded and counted in the
outputs (``n``, ``n_excluded``); nothing is dropped silently. The names used elsewhere stay
importable from here.
"""

from __future__ import annotations

from .survival_cox import COX_COLUMNS, cox_per_gene, plot_forest
from .survival_km import kaplan_meier_by_prediction
from .survival_null import NULL_COLUMNS, random_gene_null

__all__ = [
    "COX_COLUMNS",
    "NULL_COLUMNS",
    "cox_per_gene",
    "kaplan_meier_by_prediction",
    "plot_forest",
    "random_gene_null",
]
