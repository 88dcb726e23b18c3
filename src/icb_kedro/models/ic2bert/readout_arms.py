"""The linear-readout arms of the IC2Bert protocols (``ic2bert_finetune.readout`` other than
``pooled_head``).

``readout_of`` checks the configured readout; ``readout_features_by_arm`` computes the frozen
readout features of every sample per arm (IC2Bert's pretrained encoder and its ablations: a
random-init encoder, the token bins), label-free; ``_ReadoutArms`` holds them and fits the
linear readouts (C by inner CV, optional Platt scaling) on training rows only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from icb_kedro.models.ic2bert.finetune_history import auroc_or_nan
from icb_kedro.models.ic2bert.fold_inputs import MODEL, RANDOM_MODEL, TOKEN_LR_MODEL, fold_bundle
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.schema import SAMPLE_KEY

if TYPE_CHECKING:
    from icb_kedro.pipelines.ic2bert_finetune.config import FinetuneParams


def readout_of(params: FinetuneParams) -> str:
    """The configured readout (one of ``readout.READOUTS`` but ``tokens``: checked by the
    typed block)."""
    return params.readout


FEATURE_META = ("arm", SAMPLE_KEY)


def readout_features_by_arm(
    tokens: pd.DataFrame, pretrained: dict[str, Any], params: FinetuneParams, held_out: str
) -> pd.DataFrame:
    """Frozen readout features of every sample, per arm: IC2Bert (pretrained encoder) and its
    ablations (random-init encoder, the token bins). One node per held-out cohort, shared by
    the transfer, zero-shot and sample-size nodes (the encoder passes are the costly part).

    Label-free: a forward pass of an encoder that never saw the held-out cohort; only the
    readouts fitted on these features see labels, and only training rows'. Columns ``arm,
    sample_key, f0..f{k-1}`` (NaN = a gene the sample's cohort does not measure); empty for
    the ``pooled_head`` readout.
    """
    from icb_kedro.models.ic2bert.readout import readout_features
    from icb_kedro.models.ic2bert.weights import init_params

    kind = readout_of(params)
    if kind == "pooled_head":
        return pd.DataFrame(columns=list(FEATURE_META))
    bundle = fold_bundle(pretrained, held_out)
    ablations, settings = params.ablations, params.linear_readout
    keys = tokens[SAMPLE_KEY].tolist()
    matrix = token_matrix(tokens, keys)

    def read(kind_, model_params):
        return readout_features(
            kind_,
            bundle.config,
            model_params,
            matrix,
            settings.batch_size,
            settings.context,
            params.seed,  # the context partition's seed
        )

    arms = {MODEL: read(kind, bundle.params)}
    if ablations.random_init:
        arms[RANDOM_MODEL] = read(kind, init_params(bundle.config, params.seed))
    if ablations.token_lr:
        arms[TOKEN_LR_MODEL] = read("tokens", bundle.params)
    frames = []
    for arm, values in arms.items():
        frame = pd.DataFrame(
            values.astype(np.float32), columns=[f"f{i}" for i in range(values.shape[1])]
        )
        frame.insert(0, SAMPLE_KEY, keys)
        frame.insert(0, "arm", arm)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


class _ReadoutArms:
    """The readout features of one held-out cohort (``readout_features_by_arm``) by arm, and
    the linear readouts fitted on them (training rows only)."""

    def __init__(
        self, features: pd.DataFrame, params: FinetuneParams, arms: tuple[str, ...] | None = None
    ) -> None:
        self.kind = readout_of(params)
        self.settings, self.context_seed = params.linear_readout, params.seed
        columns = [c for c in features.columns if c not in FEATURE_META]
        self.features, self.row = {}, {}
        for arm, rows in features.groupby("arm", sort=False):
            if arms is None or arm in arms:
                self.features[arm] = rows[columns].to_numpy(np.float64)
                self.row[arm] = {k: i for i, k in enumerate(rows[SAMPLE_KEY])}
        if MODEL not in self.features:
            raise ValueError(
                f"readout features hold no {MODEL!r} arm (arms: {sorted(self.features)})"
            )

    def rows(self, model: str, keys) -> np.ndarray:
        return np.asarray([self.row[model][k] for k in keys])

    def fit(self, model: str, keys, y: np.ndarray, seed: int):
        """(readout, out-of-fold training probabilities, in-sample training AUROC)."""
        import dataclasses

        from icb_kedro.models.ic2bert.readout import fit_linear_readout

        x = self.features[model][self.rows(model, keys)]
        kind = "tokens" if model == TOKEN_LR_MODEL else self.kind
        readout, oof = fit_linear_readout(
            x, y, kind, self.settings.Cs, self.settings.n_splits, seed, self.settings.n_features
        )
        readout = dataclasses.replace(
            readout,
            context=self.settings.context,
            context_seed=self.context_seed,
            batch_size=self.settings.batch_size,
        )
        if self.settings.calibration == "platt":
            # Post-hoc Platt scaling on the training rows' out-of-fold probabilities; for a
            # logistic readout it is a rescaling of the readout's own coefficients, so the
            # registered model carries it with no extra step.
            from icb_kedro.evaluation.calibration import fit_platt
            from icb_kedro.models.portable import platt_scale

            intercept, slope = fit_platt(y, oof)
            readout = dataclasses.replace(
                readout, coef=slope * readout.coef, intercept=intercept + slope * readout.intercept
            )
            oof = platt_scale(oof, intercept, slope)
        return readout, oof, auroc_or_nan(y, readout.predict_proba(x))

    def predict(self, model: str, readout, keys) -> np.ndarray:
        return readout.predict_proba(self.features[model][self.rows(model, keys)])
