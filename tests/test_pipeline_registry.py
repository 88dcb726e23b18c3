"""The registry serves every name under Kedro 1.7's selective loading (`kedro run --pipelines`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def requested():
    """Ask for pipelines the way `kedro run --pipelines a,b` does (a filter set before the
    first access), and restore the unfiltered registry afterwards."""
    bootstrap_project(ROOT)

    def ask(*names: str):
        pipelines.set_requested(list(names))
        return {name: pipelines[name] for name in names}

    yield ask
    pipelines.set_requested(None)


@pytest.mark.parametrize(
    "name, includes",
    [
        ("study", {"gather_predictions", "interpretation_report", "baselines_fit_xgboost"}),
        ("__default__", {"gather_predictions", "interpretation_report"}),
        ("ic2bert_finetune", {"build_harmonized_expression", "combine_lodocv_folds"}),
        ("ic2bert_pretrain", {"build_harmonized_expression", "ic2bert_select_model_input"}),
        ("baselines", {"baselines_fit_xgboost"}),
    ],
)
def test_a_requested_name_is_built_whole(requested, name, includes) -> None:
    """`kedro run --pipelines study` once failed with "error while importing
    icb_kedro.pipelines.study": Kedro's find_pipelines imports only the requested packages."""
    built = requested(name)[name]
    assert includes <= {node.name for node in built.nodes}


def test_no_pipeline_module_imports_another_pipeline() -> None:
    """Pipelines share code through the packages and icb_kedro.wiring, never each other."""
    import ast

    package = ROOT / "src" / "icb_kedro" / "pipelines"
    for path in sorted(package.glob("*/*.py")):
        own = path.parent.name
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                parts = node.module.split(".")
                if parts[:2] == ["icb_kedro", "pipelines"] and len(parts) > 2:
                    assert parts[2] == own, f"{path.relative_to(ROOT)} imports {node.module}"


def test_the_evaluation_scores_every_model_pipeline_that_writes_predictions(requested) -> None:
    """A model is a plug-in: a pipeline writing ``predictions_<name>`` is gathered by the
    evaluation without a change to it (``pipeline_registry.scored_models``)."""
    from kedro.pipeline import Node, Pipeline

    from icb_kedro.pipeline_registry import scored_models

    evaluation = requested("evaluation")["evaluation"]
    assert {
        "predictions_amu",
        "predictions_baselines",
        "predictions_ic2bert",
    } <= evaluation.inputs()
    toy = Pipeline([Node(lambda x: x, "toy_features", "predictions_toy", name="toy_fit")])
    with_toy = {**{name: pipelines[name] for name in ("amu", "baselines")}, "toy": toy}
    assert scored_models(with_toy) == ["baselines", "amu", "toy"]  # shipped order, then new
