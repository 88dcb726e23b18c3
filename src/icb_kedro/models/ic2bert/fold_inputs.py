"""What every IC2Bert fine-tuning protocol reads of one held-out cohort h: the model (arm)
names of its prediction rows, h's pretrained bundle, labels and cohorts of the token table,
h's labelled size (its fine-tuning tier) and its fold specs (``evaluation.protocols``).

Pure pandas/numpy: the bundle class is imported inside ``fold_bundle`` (no JAX at import).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.protocols import FoldSpec, iter_protocol_folds
from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY

if TYPE_CHECKING:
    from icb_kedro.pipelines.ic2bert_finetune.config import FinetuneParams

MODEL = "ic2bert"
ENSEMBLE_MODEL = "ic2bert_ensemble"
RANDOM_MODEL = (
    "ic2bert_random_init"  # ablation: the same encoder and readout, random (not pretrained) weights
)
TOKEN_LR_MODEL = "ic2bert_token_lr"  # ablation: L2-LR on the token bins themselves, no encoder


def fold_bundle(pretrained: dict[str, Any], held_out: str):
    """The ``ModelBundle`` of a pretrained (or fine-tuned) dict, checked to belong to h."""
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle

    bundle = ModelBundle.from_dict(pretrained)
    if bundle.metadata.get("held_out") != held_out:
        raise ValueError(
            f"pretrained model of {bundle.metadata.get('held_out')!r} given to the "
            f"fold of {held_out!r}"
        )
    return bundle


def labels_of(tokens: pd.DataFrame, keys: list[str]) -> np.ndarray:
    labels = tokens.set_index(SAMPLE_KEY).loc[list(keys), LABEL]
    if labels.isna().any():
        raise ValueError(
            f"unlabelled samples in a supervised set: {labels[labels.isna()].index[:3].tolist()}"
        )
    return labels.astype(int).to_numpy()


def cohort_of(tokens: pd.DataFrame) -> pd.Series:
    return tokens.set_index(SAMPLE_KEY)[COHORT]


def cohort_size(tokens: pd.DataFrame, held_out: str) -> int:
    """Labelled samples of the held-out cohort: what sets its size tier (small < 50 ...).

    The original's cohort files held labelled patients only (``ICB_Response``), so its tier
    thresholds count labelled samples; unlabelled ones (here kept for pretraining) do not count.
    """
    rows = tokens[COHORT] == held_out
    if not rows.any():
        raise ValueError(f"no samples of held-out cohort {held_out!r} in the token table")
    size = int((rows & tokens[LABEL].notna()).sum())
    if size == 0:
        raise ValueError(f"held-out cohort {held_out!r} has no labelled samples to fine-tune on")
    return size


def _folds_of(folds: pd.DataFrame, held_out: str) -> pd.DataFrame:
    rows = folds[folds["held_out"] == held_out]
    if rows.empty:
        raise ValueError(f"the fold table has no rows for held-out cohort {held_out!r}")
    return rows


def fold_specs(
    folds: pd.DataFrame, protocol: str, held_out: str, n_repeats: Any = None
) -> list[FoldSpec]:
    return list(iter_protocol_folds(_folds_of(folds, held_out), [protocol], n_repeats))


def _transfer_protocols(params: FinetuneParams) -> list[str]:
    return list(params.transfer_protocols)


def transfer_train_keys(
    spec: FoldSpec, cohort: pd.Series, held_out: str, params: FinetuneParams
) -> list[str]:
    """The rows a transfer split trains on (``params.transfer_rows[protocol]``):
    ``sources_and_target`` = the split's own training rows, the labelled source cohorts and
    h's target_train (what the baselines' ``transfer`` trains on, so the two compare on the
    same rows); ``target`` = h's target_train only (the IC2Bert paper's fine-tuning, where the
    sources were used label-free, by pretraining). A protocol not named there: ``target``."""
    if params.transfer_rows.get(spec.protocol, "target") == "sources_and_target":
        return list(spec.train_keys)
    return [k for k in spec.train_keys if cohort[k] == held_out]


def _transfer_specs(folds: pd.DataFrame, held_out: str, params: FinetuneParams) -> list[FoldSpec]:
    """The transfer folds of h: out-of-fold K-fold (``transfer``) and, where configured, the
    paper's 80/20 splits (``transfer_paper``), each as many repeats as ``n_repeats`` says."""
    return list(
        iter_protocol_folds(
            _folds_of(folds, held_out), _transfer_protocols(params), params.n_repeats
        )
    )
