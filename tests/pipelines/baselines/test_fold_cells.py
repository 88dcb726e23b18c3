"""The (held-out cohort, trial) cell as a run parameter (``params:folds.cells``): a run of one
cell scores exactly the rows the full run scores for that cell, and a bad selection fails."""

from __future__ import annotations

import pandas as pd
import pytest

from icb_kedro.evaluation.protocols import FoldCells, iter_protocol_folds, select_cells
from icb_kedro.pipelines.baselines.pipeline import create_pipeline
from icb_kedro.pipelines.folds.config import FoldsConfig
from icb_kedro.wiring import CELLS

from .conftest import COHORTS, panel_features


def _fit_node(name: str):
    (node,) = [n for n in create_pipeline().nodes if n.name == name]
    assert CELLS in node.inputs  # the node reads the selection like any parameter
    return node


def _run(node, inputs: dict, params: dict, cells: dict | None) -> pd.DataFrame:
    features = panel_features(inputs, params)
    outputs = node.run(
        {
            "baselines_features": features,
            "lodocv_folds": inputs["lodocv_folds"],
            "amu_matrix": inputs["amu_matrix"],
            "amu_holdout_folds": inputs["amu_holdout_folds"],
            "params:baselines": params,
            CELLS: cells,
        }
    )
    return outputs["baselines_predictions_logreg"]


def test_one_cell_scores_the_rows_of_the_full_run_for_that_cell(synthetic_inputs, tiny_params):
    params = {**tiny_params, "protocols": ["transfer", "within"]}
    node = _fit_node("baselines_fit_logreg")
    full = _run(node, synthetic_inputs, params, None)
    cell = _run(node, synthetic_inputs, params, {"held_out": [COHORTS[1]], "trials": [2]})

    assert set(zip(cell["cohort"], cell["trial"], strict=True)) == {(COHORTS[1], 2)}
    expected = full[(full["cohort"] == COHORTS[1]) & (full["trial"] == 2)]
    pd.testing.assert_frame_equal(
        cell.reset_index(drop=True), expected.reset_index(drop=True), check_exact=True
    )
    # No selection (the default) is the full run; the fold table itself is never rewritten.
    pd.testing.assert_frame_equal(_run(node, synthetic_inputs, params, {}), full)
    # baselines.held_out (conf/light names two cohorts) and the cell's cohort intersect.
    both = {**params, "held_out": [COHORTS[0], COHORTS[1]]}
    again = _run(node, synthetic_inputs, both, {"held_out": [COHORTS[1]], "trials": [2]})
    pd.testing.assert_frame_equal(again, cell)
    with pytest.raises(ValueError, match="baselines.held_out names cohorts that are not in"):
        _run(node, synthetic_inputs, both, {"held_out": [COHORTS[2]]})


def test_a_protocol_whose_splits_the_selection_left_out_is_skipped(synthetic_inputs) -> None:
    """K-fold trial 1 chosen: transfer_paper's 80/20 splits (trials 1000+) are not in the run,
    which is no error then, but is one on a whole table that lacks them."""
    folds = synthetic_inputs["lodocv_folds"]
    chosen = select_cells(folds, [COHORTS[0]], [1])
    specs = list(iter_protocol_folds(chosen, ["transfer", "transfer_paper", "loco"]))
    assert [(s.protocol, s.trial) for s in specs] == [("transfer", 1), ("loco", 1)]
    kfold_only = folds[folds["scheme"] == "kfold"]
    with pytest.raises(ValueError, match="no holdout splits"):
        list(iter_protocol_folds(kfold_only, ["transfer_paper"]))


def test_a_selection_that_keeps_nothing_or_names_an_absent_trial_fails() -> None:
    folds = pd.DataFrame({"held_out": ["A", "A", "B"], "trial": [0, 1, 0], "x": [1, 2, 3]})
    assert select_cells(folds) is folds and select_cells(folds, None, None) is folds
    chosen = select_cells(folds, ["A"], [1])
    assert chosen["x"].tolist() == [2] and chosen.attrs["folds.cells"]["trials"] == [1]
    with pytest.raises(ValueError, match=r"names \['Bb'\], not held-out cohorts .*\['A', 'B'\]"):
        select_cells(folds, ["A", "Bb"])  # a typo next to a valid name: not silently ignored
    one_cohort = folds[folds["held_out"] == "A"]  # a namespaced pipeline's table
    assert select_cells(one_cohort, ["A", "B"])["x"].tolist() == [1, 2]  # B: another namespace
    with pytest.raises(ValueError, match=r"folds.cells.held_out=\['C'\] keeps none .*--namespaces"):
        select_cells(one_cohort, ["C"])
    with pytest.raises(ValueError, match=r"folds.cells.trials \[7\] are not in the table"):
        select_cells(folds, ["B"], [0, 7])
    # `--params folds.cells.trials=3` gives a scalar; the typed block takes it as one cell.
    assert FoldCells.of({"trials": 3, "held_out": "A"}, CELLS) == FoldCells(
        held_out=("A",), trials=(3,)
    )
    with pytest.raises(ValueError, match="unknown key 'cells.trial'"):
        FoldsConfig.of({"cells": {"trial": 3}}, "params:folds")
