"""The ``within`` protocol of IC2Bert: what pretraining adds.

The same architecture, tokenizer and token table of h's fold (all label-free and fitted
without h) trained from random initialisation, not from the pretrained weights, on h's
``target_train`` rows of each ``within`` split, and scored once on its test rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from icb_kedro.models.ic2bert.finetune_fits import _fit_full, _score
from icb_kedro.models.ic2bert.finetune_history import _history
from icb_kedro.models.ic2bert.fold_inputs import MODEL, _cohort_size, _labels, _specs
from icb_kedro.schema import prediction_frame


def train_within(
    bundle,
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    params: dict[str, Any],
    held_out: str,
    n_repeats: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every ``within`` split (``n_repeats`` repeats) trained from random initialisation on
    target_train only: (predictions, histories)."""
    from icb_kedro.models.ic2bert.weights import init_params

    tables, histories = [], []
    for spec in _specs(folds, "within", held_out, n_repeats):
        init = init_params(bundle.config, spec.seed)
        result, threshold = _fit_full(
            bundle, init, spec.train_keys, tokens, params, spec.seed, _cohort_size(tokens, held_out)
        )
        y_prob = _score(
            bundle, result.params, spec.test_keys, tokens, int(params.get("eval_batch_size", 64))
        )
        tables.append(
            prediction_frame(MODEL, spec, _labels(tokens, spec.test_keys), y_prob, threshold)
        )
        histories.append(_history(result, held_out, "within", spec.trial))
    return pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True)
