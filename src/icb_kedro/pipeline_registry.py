"""Project pipelines.

``project_pipelines`` picks up every ``pipelines/<name>``; no pipeline imports another. The
IC2Bert pipelines are registered with the chain they need (``UPSTREAM``), so ``kedro run
--pipelines ic2bert_finetune`` runs ingestion through pretraining first.

``evaluation`` and ``interpretation`` read the model pipelines' outputs under their real
names, declared as writable optional datasets (``None`` when never produced): by name they
work on whatever is on disk, and in any sum of pipelines (``--pipelines a,b,c``, ``study``,
``__default__``) Kedro orders them after the models they read from, in one DAG.

- ``study``: every model pipeline (baselines, AMU, the IC2Bert chain) + evaluation +
  interpretation.
- ``__default__`` (``kedro run`` / ``make run``): the main job: the IC2Bert chain, the
  baselines, AMU, evaluation and the report; ``DEFAULT_SKIPS`` says what is left out and why.
- ``predict`` scores a *new* expression file with a registered model: never in either.
"""

from __future__ import annotations

import importlib
import pkgutil

from kedro.pipeline import Pipeline

from icb_kedro.pipelines.evaluation import create_pipeline as evaluation_pipeline
from icb_kedro.pipelines.interpretation import create_pipeline as interpretation_pipeline
from icb_kedro.tags import tag_pipeline
from icb_kedro.wiring import MODEL_PIPELINES

#: Built below around the model pipelines, or never run by default.
NOT_MODELS = ("evaluation", "interpretation", "predict")
#: Model pipelines left out of ``__default__``: run them by name, then
#: ``kedro run --pipelines evaluation,interpretation`` (or ``--pipelines study``). None since
#: AMU's fused engine (models/amu/fused.py) made it ~7x cheaper to train: conf/base sizes its
#: protocols to the 20-minute budget of ``make run`` (conf/base/parameters_amu.yml).
DEFAULT_SKIPS: tuple[str, ...] = ()


#: Registered pipelines that include the pipelines they depend on (summing dedups shared nodes).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "ic2bert_pretrain": ("ingestion", "harmonization", "folds", "tokenization"),
    "ic2bert_finetune": ("ingestion", "harmonization", "folds", "tokenization", "ic2bert_pretrain"),
}


def scored_models(pipelines: dict[str, Pipeline]) -> list[str]:
    """``<name>`` of every ``predictions_<name>`` table a model pipeline writes: what the
    evaluation gathers (a new model pipeline is scored by writing one). The shipped models
    first, in the evaluation's own order (the row order of ``all_predictions``), then any
    other by name."""
    found = {
        output.removeprefix("predictions_")
        for name, pipeline in pipelines.items()
        if name not in NOT_MODELS
        for output in pipeline.all_outputs()
        if output.startswith("predictions_") and "." not in output
    }
    shipped = [m for m in MODEL_PIPELINES if m in found]
    return shipped + sorted(found - set(shipped))


def with_reports(models: Pipeline, scored: list[str]) -> Pipeline:
    """``models`` + the evaluation of ``scored`` and the report (ordered by shared names)."""
    return models + evaluation_pipeline(models=scored) + interpretation_pipeline(models=scored)


def project_pipelines() -> dict[str, Pipeline]:
    """``create_pipeline()`` of every ``pipelines/<name>`` package, always all of them.

    Not Kedro's ``find_pipelines``: under ``kedro run --pipelines a,b`` Kedro 1.7 makes it
    import only the packages named ``a`` and ``b``, so a composed pipeline (``study``) was
    "not found" and one that needs its upstream chain could not be built. The pipeline
    modules are light (jax and paddle are imported inside node bodies only).
    """
    import icb_kedro.pipelines as package

    return {
        module.name: importlib.import_module(f"{package.__name__}.{module.name}").create_pipeline()
        for module in pkgutil.iter_modules(package.__path__)
        if module.ispkg and not module.name.startswith(("_", "."))
    }


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = project_pipelines()
    pipelines.update(
        {
            name: sum((pipelines[u] for u in upstream), Pipeline([])) + pipelines[name]
            for name, upstream in UPSTREAM.items()
        }
    )
    scored = scored_models(pipelines)
    pipelines["evaluation"] = evaluation_pipeline(models=scored)
    pipelines["interpretation"] = interpretation_pipeline(models=scored)
    models = {name: p for name, p in pipelines.items() if name not in NOT_MODELS}
    # Summing dedups nodes shared by several pipelines (the upstream chain), one DAG.
    pipelines["study"] = with_reports(sum(models.values(), Pipeline([])), scored)
    pipelines["__default__"] = with_reports(
        sum((p for name, p in models.items() if name not in DEFAULT_SKIPS), Pipeline([])), scored
    )
    # model.<family> / protocol.<name> tags for kedro-viz's filter and `kedro run --tags`.
    return {name: tag_pipeline(p) for name, p in pipelines.items()}
