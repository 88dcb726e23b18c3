"""Typed ``params:folds`` (conf/base/parameters_folds.yml)."""

from __future__ import annotations

from pydantic import Field

from icb_kedro.config import Config
from icb_kedro.evaluation.protocols import FoldCells


class KFoldSplits(Config):
    """Repeated stratified K-fold of the held-out cohort's labelled patients (out of fold)."""

    n_splits: int = Field(5, ge=2)
    n_repeats: int = Field(10, ge=1)


class PaperSplits(Config):
    """The IC2Bert paper's stratified 80/20 splits (``transfer_paper``); 0 trials = none."""

    n_trials: int = Field(10, ge=0)
    test_size: float = Field(0.2, gt=0.0, lt=1.0)


class LodocvFolds(Config):
    """``params:folds.lodocv``: K-fold repeat r and 80/20 trial t use seed base_seed + r / + t."""

    base_seed: int = 1001
    kfold: KFoldSplits = KFoldSplits()
    paper: PaperSplits | None = None  # absent or null: no 80/20 splits (conf/base: 10)


class AmuHoldoutFolds(Config):
    """``params:folds.amu_holdout``: the AMU paper's repeated random 80/20 splits (stratified)."""

    n_trials: int = Field(5, ge=1)
    base_seed: int = 42
    test_size: float = Field(0.2, gt=0.0, lt=1.0)


class FoldsConfig(Config):
    """``params:folds`` (``cells``: ``evaluation.protocols.FoldCells``, read by the model
    pipelines through ``wiring.on_fold_cells``)."""

    lodocv: LodocvFolds = LodocvFolds()
    amu_holdout: AmuHoldoutFolds = AmuHoldoutFolds()
    cells: FoldCells = FoldCells()


# The parameter block(s) this module types, found by hooks.typed_parameters.
BLOCKS: dict[str, type[Config]] = {"folds": FoldsConfig}
