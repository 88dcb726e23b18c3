"""Which genes drive the predictions, and do they matter for survival.

Library functions on plain arrays, frames and callables (no Kedro, no MLflow), used by
``icb_kedro.pipelines.interpretation``, whose nodes parse the parameters: settings arrive
as the typed models of ``icb_kedro.pipelines.interpretation.config``, never as dicts.

- :mod:`.shap_analysis`: SHAP values (Tree / Kernel explainers) on a fold's test rows,
  gene rankings, top-k intersections across models, beeswarm and bar plots.
- :mod:`.importance`: IC2Bert attention importance from softmax attention probabilities,
  permutation importance (drop in AUROC), their 0.4/0.6 combination, top-k frequencies.
- :mod:`.embeddings`: AMU gene embeddings: distances, clustering, t-SNE, neighbours vs
  co-expression vs signature co-membership.
- :mod:`.enrichment`: over-representation of top genes in the shipped signature sets.
- :mod:`.survival`: per-gene Cox models stratified by cohort, forest plots, KM curves.

Heavy model frameworks (paddle, jax) are never imported here: models enter as callables.
"""
