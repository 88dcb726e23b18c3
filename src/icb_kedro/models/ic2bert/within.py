"""The ``within`` protocol of IC2Bert: what pretraining adds.

The same architecture, tokenizer and token table of h's fold (all label-free and fitted
without h) trained from random initialisation, not from the pretrained weights, on h's
``target_train`` rows of each ``within`` split, and scored once on its test rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from icb_kedro.models.ic2bert.finetune_fits import fit_full, score_keys
from icb_kedro.models.ic2bert.finetune_history import history_frame
from icb_kedro.models.ic2bert.fold_inputs import MODEL, cohort_size, fold_specs, labels_of
from icb_kedro.schema import prediction_frame

if TYPE_CHECKING:
    from icb_kedro.pipelines.ic2bert_finetune.config import FinetuneParams


def train_within(
    bundle,
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    params: FinetuneParams,
    held_out: str,
    n_repeats: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every ``within`` split (``n_repeats`` repeats) trained from random initialisation on
    target_train only: (predictions, histories)."""
    from icb_kedro.models.ic2bert.weights import init_params

    tables, histories = [], []
    for spec in fold_specs(folds, "within", held_out, n_repeats):
        init = init_params(bundle.config, spec.seed)
        result, threshold = fit_full(
            bundle, init, spec.train_keys, tokens, params, spec.seed, cohort_size(tokens, held_out)
        )
        y_prob = score_keys(bundle, result.params, spec.test_keys, tokens, params.eval_batch_size)
        tables.append(
            prediction_frame(MODEL, spec, labels_of(tokens, spec.test_keys), y_prob, threshold)
        )
        histories.append(history_frame(result, held_out, "within", spec.trial))
    return pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True)
