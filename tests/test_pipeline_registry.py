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
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level >= 2:  # `from ..x import y`: a sibling pipeline package
                    targets = [f"icb_kedro.pipelines.{node.module or ''}".rstrip(".")]
                    targets += [f"{targets[0]}.{alias.name}" for alias in node.names]
                elif node.level == 0 and node.module:
                    targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for target in targets:
                parts = target.split(".")
                if parts[:2] == ["icb_kedro", "pipelines"] and len(parts) > 2:
                    assert parts[2] == own, f"{path.relative_to(ROOT)} imports {target}"


def test_no_environment_switches_mlflow_logging_off_per_pipeline() -> None:
    """kedro-mlflow's ``disable_tracking.pipelines`` switches only datasets whose class name
    starts with ``Mlflow``; the artifacts the evaluation and interpretation read are wrapped
    in OptionalDataset and would keep logging (into a run MLflow starts by itself)."""
    import yaml

    for path in sorted((ROOT / "conf").glob("*/mlflow.yml")):
        tracking = (yaml.safe_load(path.read_text()) or {}).get("tracking") or {}
        assert not (tracking.get("disable_tracking") or {}).get("pipelines"), path


def test_a_plug_in_model_is_scored_reported_and_survival_analysed_without_a_listing() -> None:
    """A model pipeline that writes ``predictions_<name>`` is found by the registry and read
    by the evaluation, the report and the KM analysis (no list of models to edit)."""
    from kedro.pipeline import Node, Pipeline

    from icb_kedro.pipeline_registry import project_pipelines, scored_models, with_reports

    built = project_pipelines()
    toy = Pipeline([Node(lambda x: x, "expression_standardized", "predictions_toy", name="toy")])
    scored = scored_models({**built, "toy": toy})
    assert scored[:3] == ["baselines", "ic2bert", "amu"] and scored[-1] == "toy"
    study = with_reports(built["baselines"] + toy, scored)
    readers = {n.name for n in study.nodes if "predictions_toy" in n.inputs}
    assert {"gather_predictions", "interpretation_report", "interpretation_km_by_prediction"} <= (
        readers
    )
    order = [n.name for n in study.nodes]
    assert order.index("toy") < order.index("gather_predictions")
