"""Node tags: which model family and which protocol a node serves.

kedro-viz shows ~240 nodes for the whole study; its tag filter (and ``kedro run --tags``)
narrows that to one model or one protocol. Tags are derived here from the node names the
pipelines already use, so a pipeline module stays free of bookkeeping:

* ``model.<family>`` - ``baselines_fit_<family>``, ``interpretation_shap_<setting>_<family>``,
  ``signatures`` for the published signatures, ``ic2bert`` / ``amu`` for their pipelines;
* ``protocol.<name>`` - the evaluation protocol(s) a node scores (transfer, loco, within,
  amu_holdout).

Pipeline names are not tags: a node of the shared upstream chain belongs to several
registered pipelines (``kedro run --pipelines`` selects those).
"""

from __future__ import annotations

import re

from kedro.pipeline import Pipeline

COHORT_PROTOCOLS = ("transfer", "loco", "within")
ALL_PROTOCOLS = (*COHORT_PROTOCOLS, "amu_holdout")

# (pattern on the node name without its namespace, tags); every matching rule applies.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (r"^baselines_fit_(?P<model>\w+)$", ALL_PROTOCOLS),
    (r"^interpretation_shap_(study|cohorts)_(?P<model>\w+)$", ()),
    (r"signature", ()),
    (r"^baselines_plot_(?P<protocol>transfer|loco|within|amu_holdout)$", ()),
    (r"^ic2bert_finetune_transfer$", ("transfer",)),
    (r"^ic2bert_zero_shot_and_ensemble$", ("loco",)),
    (r"^ic2bert_train_within$", ("within",)),
    (r"^ic2bert_sample_size_analysis$", ("transfer",)),
    (r"^amu_run_cohort_protocols$", COHORT_PROTOCOLS),
    (r"^amu_run_study_protocols$", ("amu_holdout",)),
)


def node_tags(name: str) -> set[str]:
    """``model.*`` and ``protocol.*`` tags of a node, from its name (namespace ignored)."""
    base = name.rsplit(".", 1)[-1]
    tags: set[str] = set()
    for pattern, protocols in _RULES:
        match = re.search(pattern, base)
        if not match:
            continue
        groups = match.groupdict()
        if groups.get("model"):
            tags.add(f"model.{groups['model']}")
        if pattern == "signature":
            tags.add("model.signatures")
        if groups.get("protocol"):
            tags.add(f"protocol.{groups['protocol']}")
        tags.update(f"protocol.{p}" for p in protocols)
    if "model.signatures" not in tags:
        for family in ("ic2bert", "amu"):  # their pipelines' nodes and their interpretation
            if base.startswith((f"{family}_", f"interpretation_{family}_")):
                tags.add(f"model.{family}")
    return tags


def tag_pipeline(pipeline: Pipeline) -> Pipeline:
    """``pipeline`` with every node tagged by ``node_tags`` (a function of the node's name,
    so the same node gets the same tags in every pipeline that holds it)."""
    return Pipeline([node.tag(node_tags(node.name)) for node in pipeline.nodes])
