"""Nodes of the ic2bert_finetune pipeline (JAX is imported lazily inside node bodies).

Protocols written to ``predictions_ic2bert`` (columns ``schema.PREDICTION_COLUMNS``), all on
the folds of ``lodocv_folds`` read through ``icb_kedro.evaluation.protocols``:

* ``transfer`` / model ``ic2bert`` - the paper's LODOCV: h's pretrained model (other cohorts,
  label-free) fine-tuned on h's ``target_train`` rows, scored on ``target_test``. The
  evaluation layer's transfer fold trains on ``source + target_train``; IC2Bert uses the
  source samples label-free (pretraining) and only h's rows for supervised fine-tuning, as
  the paper does. ``n_train`` = number of target rows fine-tuned on.
* ``loco`` / model ``ic2bert`` - zero-shot: a classification head trained on the other
  cohorts' labels only (spec item 13: the original applies an untrained head), on frozen
  pretrained features by default (``zero_shot.trainable: head``) or fine-tuning everything
  (``all``); scored on every labelled sample of h.
* ``loco`` / model ``ic2bert_ensemble`` - our reading of the paper's ensemble: the results
  text's "models fine-tuned on each pretraining dataset", i.e. one model per source cohort
  (fine-tuned from h's pretrained weights on that cohort's labels), probabilities averaged.
  It uses no label of h, hence ``loco``. (The methods-text reading, per-trial models of h,
  cannot be scored on h's test rows without leakage: each trial's test rows are another
  trial's training rows.)
* ``within`` / model ``ic2bert`` - the same architecture and tokens trained from random
  initialisation (no pretraining) on ``target_train`` only: what pretraining adds.

Every fine-tuning picks its epoch on an inner validation split of its training rows (spec
item 8); test rows are tokenized and labelled only after that, scored once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.evaluation.metrics import binary_metrics, fit_threshold
from icb_kedro.evaluation.protocols import FoldSpec, iter_protocol_folds
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.paths import ic2bert_model_name, namespace_for
from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY, empty_predictions, prediction_frame

logger = logging.getLogger(__name__)

MODEL = "ic2bert"
ENSEMBLE_MODEL = "ic2bert_ensemble"
RANDOM_MODEL = (
    "ic2bert_random_init"  # ablation: the same encoder and readout, random (not pretrained) weights
)
TOKEN_LR_MODEL = "ic2bert_token_lr"  # ablation: L2-LR on the token bins themselves, no encoder
HISTORY_COLUMNS = (
    "held_out",
    "model",
    "protocol",
    "trial",
    "member",
    "epoch",
    "train_loss",
    "val_loss",
    "val_auroc",
    "best_epoch",
    "selection",
    "train_auroc",
)
SAMPLE_SIZE_COLUMNS = ("cohort", "n_train", "repeat", "trial", SAMPLE_KEY, "y_true", "y_prob")
REGISTRY_COLUMNS = (
    "held_out",
    "namespace",
    "model_name",
    "trial",
    "inner_val_score",
    "selection",
    "best_epoch",
)


# --------------------------------------------------------------------------- helpers
def _bundle(pretrained: dict[str, Any], held_out: str):
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle

    bundle = ModelBundle.from_dict(pretrained)
    if bundle.metadata.get("held_out") != held_out:
        raise ValueError(
            f"pretrained model of {bundle.metadata.get('held_out')!r} given to the "
            f"fold of {held_out!r}"
        )
    return bundle


def _labels(tokens: pd.DataFrame, keys: list[str]) -> np.ndarray:
    labels = tokens.set_index(SAMPLE_KEY).loc[list(keys), LABEL]
    if labels.isna().any():
        raise ValueError(
            f"unlabelled samples in a supervised set: {labels[labels.isna()].index[:3].tolist()}"
        )
    return labels.astype(int).to_numpy()


def _cohort_of(tokens: pd.DataFrame) -> pd.Series:
    return tokens.set_index(SAMPLE_KEY)[COHORT]


def _cohort_size(tokens: pd.DataFrame, held_out: str) -> int:
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


def _specs(
    folds: pd.DataFrame, protocol: str, held_out: str, n_repeats: Any = None
) -> list[FoldSpec]:
    return list(iter_protocol_folds(_folds_of(folds, held_out), [protocol], n_repeats))


def _transfer_protocols(params: dict[str, Any]) -> list[str]:
    return list(params.get("transfer_protocols") or ["transfer"])


def _transfer_specs(folds: pd.DataFrame, held_out: str, params: dict[str, Any]) -> list[FoldSpec]:
    """The transfer folds of h: out-of-fold K-fold (``transfer``) and, where configured, the
    paper's 80/20 splits (``transfer_paper``), each as many repeats as ``n_repeats`` says."""
    return list(
        iter_protocol_folds(
            _folds_of(folds, held_out), _transfer_protocols(params), params.get("n_repeats")
        )
    )


def _history(
    result,
    held_out: str,
    protocol: str,
    trial: int,
    member: str = "",
    train_auroc: float = float("nan"),
    model: str = MODEL,
) -> pd.DataFrame:
    table = result.history.copy()
    for column in ("val_loss", "val_auroc"):
        if column not in table:
            table[column] = np.nan
    table = table.assign(
        held_out=held_out,
        model=model,
        protocol=protocol,
        trial=int(trial),
        member=member,
        best_epoch=result.best_epoch,
        selection=result.selection,
        train_auroc=float(train_auroc),
    )
    return table[list(HISTORY_COLUMNS)]


def _auroc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def _readout_history(
    readout, held_out: str, model: str, protocol: str, trial: int, member: str, train_auroc: float
) -> pd.DataFrame:
    """One history row of a linear-readout fit: its inner-CV AUROC (training rows) and fit."""
    row = {
        "held_out": held_out,
        "model": model,
        "protocol": protocol,
        "trial": int(trial),
        "member": member,
        "epoch": 0,
        "train_loss": np.nan,
        "val_loss": np.nan,
        "val_auroc": readout.cv_auroc,
        "best_epoch": 0,
        "selection": f"readout_cv_auroc (C={readout.C:g})",
        "train_auroc": float(train_auroc),
    }
    return pd.DataFrame([row])[list(HISTORY_COLUMNS)]


def readout_of(params: dict[str, Any]) -> str:
    from icb_kedro.models.ic2bert.readout import READOUTS

    kind = params.get("readout", "per_gene_expected_bin")
    if kind not in READOUTS or kind == "tokens":
        raise ValueError(
            "ic2bert_finetune.readout must be one of "
            f"{[r for r in READOUTS if r != 'tokens']}, got {kind!r}"
        )
    return kind


FEATURE_META = ("arm", SAMPLE_KEY)


def readout_features_table(
    tokens: pd.DataFrame, pretrained: dict[str, Any], params: dict[str, Any], held_out: str
) -> pd.DataFrame:
    """Frozen readout features of every sample, per arm: IC2Bert (pretrained encoder) and its
    ablations (random-init encoder, the token bins). One node per held-out cohort, shared by
    the transfer, zero-shot and sample-size nodes (the encoder passes are the costly part).

    Label-free: a forward pass of an encoder that never saw the held-out cohort; only the
    readouts fitted on these features see labels, and only training rows'. Columns ``arm,
    sample_key, f0..f{k-1}`` (NaN = a gene the sample's cohort does not measure); empty for
    the ``pooled_head`` readout.
    """
    from icb_kedro.models.ic2bert import train
    from icb_kedro.models.ic2bert.readout import readout_features

    kind = readout_of(params)
    if kind == "pooled_head":
        return pd.DataFrame(columns=list(FEATURE_META))
    bundle = _bundle(pretrained, held_out)
    ablations = params.get("ablations") or {}
    settings = _readout_settings(params)
    keys = tokens[SAMPLE_KEY].tolist()
    matrix = token_matrix(tokens, keys)

    def read(kind_, model_params):
        return readout_features(
            kind_,
            bundle.config,
            model_params,
            matrix,
            settings["batch_size"],
            settings["context"],
            settings["context_seed"],
        )

    arms = {MODEL: read(kind, bundle.params)}
    if ablations.get("random_init", True):
        arms[RANDOM_MODEL] = read(
            kind, train.init_params(bundle.config, int(params.get("seed", 0)))
        )
    if ablations.get("token_lr", True):
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


def _readout_settings(params: dict[str, Any]) -> dict[str, Any]:
    readout = params.get("linear_readout") or {}
    if readout.get("calibration", "none") not in ("none", "platt"):
        raise ValueError(
            "ic2bert_finetune.linear_readout.calibration must be none or platt, "
            f"got {readout['calibration']!r}"
        )
    return {
        "Cs": tuple(float(c) for c in readout.get("Cs", (0.001, 0.01, 0.1, 1.0))),
        "n_splits": int(readout.get("n_splits", 5)),
        "context": int(readout.get("context", 0)),
        "context_seed": int(params.get("seed", 0)),
        "batch_size": int(readout.get("batch_size", 8)),
        "calibration": str(readout.get("calibration", "none")),
    }


class _ReadoutArms:
    """The readout features of one held-out cohort (``readout_features_table``) by arm, and
    the linear readouts fitted on them (training rows only)."""

    def __init__(
        self, features: pd.DataFrame, params: dict[str, Any], arms: tuple[str, ...] | None = None
    ) -> None:
        self.kind = readout_of(params)
        self.settings = _readout_settings(params)
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
            x, y, kind, self.settings["Cs"], self.settings["n_splits"], seed
        )
        readout = dataclasses.replace(
            readout,
            context=self.settings["context"],
            context_seed=self.settings["context_seed"],
            batch_size=self.settings["batch_size"],
        )
        if self.settings["calibration"] == "platt":
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
        return readout, oof, _auroc(y, readout.predict_proba(x))

    def predict(self, model: str, readout, keys) -> np.ndarray:
        return readout.predict_proba(self.features[model][self.rows(model, keys)])


def _tier_settings(params: dict[str, Any], n_samples: int):
    from icb_kedro.models.ic2bert import train

    return train.size_tier(n_samples), train.tier_config(
        n_samples, params["tiers"], params.get("common")
    )


def _fit_full(bundle, init_params, keys, tokens, params, seed: int, tier_n: int):
    """Fine-tune all parameters on ``keys``; returns (result, threshold fitted on those rows).

    The threshold comes from the inner-validation rows (training rows the chosen epoch did
    not fit on) when they hold both classes; otherwise from every training row, where the
    network's near-memorised probabilities make it optimistic.
    """
    from icb_kedro.models.ic2bert import train
    from icb_kedro.models.ic2bert.predict import predict_proba

    tier, config = _tier_settings(params, tier_n)
    x, y = token_matrix(tokens, keys), _labels(tokens, keys)
    result = train.finetune(bundle.config, init_params, x, y, config, seed, tier)
    val_idx = result.val_idx  # the inner split this fit chose its epoch on
    rows = val_idx if len(val_idx) and len(np.unique(y[val_idx])) == 2 else np.arange(len(y))
    p_rows = predict_proba(bundle.config, result.params, x[rows], config.eval_batch_size)
    threshold = fit_threshold(y[rows], p_rows, params.get("threshold_method", "youden"))
    return result, threshold


def _inner_val_loss(result) -> float:
    """Inner-validation BCE of the chosen epoch (inf without a validation split): one scale
    on which trials selected by inner AUROC and by inner loss compare fairly."""
    history = result.history
    if "val_loss" not in history or history["val_loss"].isna().all():
        return float("inf")
    return float(history.loc[history["epoch"] == result.best_epoch, "val_loss"].iloc[0])


def _score(bundle, model_params, keys, tokens, batch_size: int) -> np.ndarray:
    from icb_kedro.models.ic2bert.predict import predict_proba

    return predict_proba(bundle.config, model_params, token_matrix(tokens, keys), batch_size)


# --------------------------------------------------------------------------- transfer
def input_transform(tokenization: dict[str, Any] | None) -> str:
    """How the registered model must preprocess a new cohort to match its training input."""
    source = (tokenization or {}).get("input", "expression_standardized")
    return "cohort_zscore" if source == "expression_standardized" else "none"


def finetune_transfer(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
    tokenization: dict[str, Any] | None = None,
    features: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The paper's transfer protocol for one held-out cohort, every trial.

    Returns predictions (``transfer``), fine-tuning histories, and the model bundle of the
    trial with the best inner-validation score (the one registered for this cohort; the
    choice never looks at test rows). ``tokenization`` (its ``input``) tells the bundle how
    new data must be scaled (``input_transform``).
    """
    bundle = _bundle(pretrained, held_out)
    if readout_of(params) != "pooled_head":
        if features is None:
            features = readout_features_table(tokens, pretrained, params, held_out)
        return _transfer_with_readout(
            bundle, tokens, folds, params, held_out, tokenization, features
        )
    cohort = _cohort_of(tokens)
    tables, histories, best = [], [], None
    for spec in _transfer_specs(folds, held_out, params):
        train_keys = [k for k in spec.train_keys if cohort[k] == held_out]  # target_train only
        result, threshold = _fit_full(
            bundle,
            bundle.params,
            train_keys,
            tokens,
            params,
            spec.seed,
            _cohort_size(tokens, held_out),
        )
        # Test rows enter only now, after the epoch was chosen on the inner validation split.
        y_prob = _score(
            bundle, result.params, spec.test_keys, tokens, int(params.get("eval_batch_size", 64))
        )
        tables.append(
            prediction_frame(
                MODEL,
                spec,
                _labels(tokens, spec.test_keys),
                y_prob,
                threshold,
                n_train=len(train_keys),
            )
        )
        y_train = _labels(tokens, train_keys)
        train_auroc = _auroc(
            y_train,
            _score(
                bundle, result.params, train_keys, tokens, int(params.get("eval_batch_size", 64))
            ),
        )
        histories.append(
            _history(result, held_out, spec.protocol, spec.trial, train_auroc=train_auroc)
        )
        score = -_inner_val_loss(result)  # the registered trial: lowest inner-validation loss
        # ... among the splits of the first transfer protocol (one protocol per registered model).
        if spec.protocol == _transfer_protocols(params)[0] and (best is None or score > best[0]):
            best = (score, spec, result, threshold, len(train_keys))
        logger.info(
            "IC2Bert transfer %s trial %d: best epoch %d (%s %.3f)",
            held_out,
            spec.trial,
            result.best_epoch,
            result.selection,
            result.score,
        )
    if best is None:
        raise ValueError(f"no transfer folds for held-out cohort {held_out!r}")
    score, spec, result, threshold, n_rows = best
    chosen = _transfer_bundle(
        bundle,
        result.params,
        tokenization,
        spec,
        threshold,
        stage="fine-tuned",
        inner_val_score=float(result.score),
        inner_val_loss=float(-score),
        selection=result.selection,
        finetune_best_epoch=int(result.best_epoch),
        **_provenance(tokens, held_out, n_rows),
    )
    return pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True), chosen


def _provenance(tokens: pd.DataFrame, held_out: str, n_rows: int) -> dict[str, Any]:
    """What the registered model was trained on (its registry tags and description)."""
    others = sorted(set(_cohort_of(tokens)) - {held_out})
    return {"pretrain_cohorts": ", ".join(others), "n_finetune_rows": int(n_rows)}


def _transfer_bundle(
    bundle, model_params, tokenization, spec: FoldSpec, threshold: float, **metadata
) -> dict[str, Any]:
    """The registered transfer model of a held-out cohort: its weights, the fold's tokenizer
    and what it was chosen by (never a test score)."""
    from icb_kedro.models.ic2bert.checkpoint import ModelBundle

    return ModelBundle(
        bundle.config,
        model_params,
        bundle.tokenizer,
        {
            **bundle.metadata,
            "protocol": spec.protocol,
            "trial": int(spec.trial),
            "threshold": float(threshold),
            "input_transform": input_transform(tokenization),
            "n_genes": len(bundle.genes),
            **metadata,
        },
    ).to_dict()


def _transfer_with_readout(bundle, tokens, folds, params, held_out, tokenization, features):
    """Transfer with a linear readout: per trial, each arm's readout is fitted on h's
    target_train rows (C by stratified CV on them) and scores target_test once."""
    arms = _ReadoutArms(features, params)
    cohort = _cohort_of(tokens)
    method = params.get("threshold_method", "youden")
    tables, histories, best = [], [], None
    for spec in _transfer_specs(folds, held_out, params):
        train_keys = [k for k in spec.train_keys if cohort[k] == held_out]  # target_train only
        y_train, y_test = _labels(tokens, train_keys), _labels(tokens, spec.test_keys)
        for model in arms.features:
            readout, oof, train_auroc = arms.fit(model, train_keys, y_train, spec.seed)
            threshold = fit_threshold(y_train, oof, method)  # out-of-fold, training rows only
            y_prob = arms.predict(model, readout, spec.test_keys)
            tables.append(
                prediction_frame(model, spec, y_test, y_prob, threshold, n_train=len(train_keys))
            )
            histories.append(
                _readout_history(
                    readout, held_out, model, spec.protocol, spec.trial, "", train_auroc
                )
            )
            registered = (
                model == MODEL and spec.protocol == _transfer_protocols(params)[0]
            )  # see finetune_transfer
            if registered and (best is None or readout.cv_auroc > best[0]):
                best = (readout.cv_auroc, spec, readout, threshold, len(train_keys))
        logger.info(
            "IC2Bert transfer %s trial %d: readout %s fitted on %d rows",
            held_out,
            spec.trial,
            arms.kind,
            len(train_keys),
        )
    if best is None:
        raise ValueError(f"no transfer folds for held-out cohort {held_out!r}")
    score, spec, readout, threshold, n_rows = best
    chosen = _transfer_bundle(
        bundle,
        bundle.params,
        tokenization,
        spec,
        threshold,
        stage="pretrained encoder + linear readout",
        inner_val_score=float(score),
        inner_val_loss=float("nan"),
        selection="readout_cv_auroc",
        finetune_best_epoch=0,
        readout_kind=arms.kind,
        readout=readout.to_dict(),
        **_provenance(tokens, held_out, n_rows),
    )
    return pd.concat(tables, ignore_index=True), pd.concat(histories, ignore_index=True), chosen


# --------------------------------------------------------------------------- within
def finetune_within(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``within``: the same model trained from random initialisation on target_train only.

    Only the architecture, tokenizer and token table of the fold are reused (both label-free
    and fitted without h); the pretrained weights are not.
    """
    from icb_kedro.models.ic2bert import train

    within = params.get("within") or {}
    if not within.get("enabled", True):
        return empty_predictions(), pd.DataFrame(columns=list(HISTORY_COLUMNS))
    bundle = _bundle(pretrained, held_out)
    tables, histories = [], []
    for spec in _specs(folds, "within", held_out, within.get("n_repeats", params.get("n_repeats"))):
        init = train.init_params(bundle.config, spec.seed)
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


# --------------------------------------------------------------------------- zero-shot / ensemble
def _train_source_model(bundle, features, tokens, keys, params, section: dict[str, Any], seed: int):
    """A model trained on source labels only: head on frozen features, or everything.

    Returns (params, threshold on its training rows, result).
    """
    from icb_kedro.models.ic2bert import train
    from icb_kedro.models.ic2bert.predict import head_proba

    trainable = section.get("trainable", "head")
    y = _labels(tokens, keys)
    if trainable == "head":
        config = train.finetune_config(
            {**(params.get("common") or {}), **(section.get("head") or {})}
        )
        x = np.stack([features[k] for k in keys])
        result = train.train_head(
            bundle.config, bundle.params, x, y, config, seed, train.size_tier(len(keys))
        )
        p_train = head_proba(result.params, x)
    elif trainable == "all":
        result, _ = _fit_full(bundle, bundle.params, keys, tokens, params, seed, len(keys))
        p_train = _score(
            bundle, result.params, keys, tokens, int(params.get("eval_batch_size", 64))
        )
    else:
        raise ValueError(f"trainable must be 'head' or 'all', got {trainable!r}")
    return (
        result.params,
        fit_threshold(y, p_train, params.get("threshold_method", "youden")),
        result,
    )


def _predict_with(bundle, model_params, features, tokens, keys, section, params) -> np.ndarray:
    from icb_kedro.models.ic2bert.predict import head_proba

    if section.get("trainable", "head") == "head":
        return head_proba(model_params, np.stack([features[k] for k in keys]))
    return _score(bundle, model_params, keys, tokens, int(params.get("eval_batch_size", 64)))


def zero_shot_and_ensemble(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
    features: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``loco`` predictions of the zero-shot head (model ``ic2bert``) and the
    per-source ensemble."""
    from icb_kedro.models.ic2bert.predict import pooled_features

    bundle = _bundle(pretrained, held_out)
    if readout_of(params) != "pooled_head":
        if features is None:
            features = readout_features_table(tokens, pretrained, params, held_out)
        return _loco_with_readout(tokens, folds, params, held_out, features)
    zero_shot, ensemble = params.get("zero_shot") or {}, params.get("ensemble") or {}
    specs = _specs(folds, "loco", held_out, None)
    spec = specs[0]
    keys = sorted(set(spec.train_keys) | set(spec.test_keys))
    pooled = pooled_features(
        bundle.config,
        bundle.params,
        token_matrix(tokens, keys),
        int(params.get("eval_batch_size", 64)),
    )
    features = dict(zip(keys, pooled, strict=True))  # frozen pretrained features (label-free)
    seed = int(params.get("seed", 0))
    tables, histories = [], []
    y_test = _labels(tokens, spec.test_keys)
    if zero_shot.get("enabled", True):
        model_params, threshold, result = _train_source_model(
            bundle, features, tokens, spec.train_keys, params, zero_shot, seed
        )
        y_prob = _predict_with(
            bundle, model_params, features, tokens, spec.test_keys, zero_shot, params
        )
        tables.append(prediction_frame(MODEL, spec, y_test, y_prob, threshold))
        histories.append(_history(result, held_out, "loco", spec.trial, "zero_shot"))
    if ensemble.get("enabled", True):
        members, probs, train_probs = [], [], []
        for source, member_keys, y in _ensemble_sources(tokens, spec, ensemble, held_out):
            model_params, _, result = _train_source_model(
                bundle, features, tokens, member_keys, params, ensemble, seed
            )
            probs.append(
                _predict_with(
                    bundle, model_params, features, tokens, spec.test_keys, ensemble, params
                )
            )
            train_probs.append(
                _predict_with(
                    bundle, model_params, features, tokens, spec.train_keys, ensemble, params
                )
            )
            histories.append(
                _history(
                    result, held_out, "loco", spec.trial, f"ensemble:{source}", model=ENSEMBLE_MODEL
                )
            )
            members.append(source)
        if not members:
            raise ValueError(
                f"ensemble of {held_out!r}: no source cohort has both classes and enough samples"
            )
        # The threshold of the averaged model is fitted on its training rows (all sources).
        threshold = fit_threshold(
            _labels(tokens, spec.train_keys),
            np.mean(train_probs, axis=0),
            params.get("threshold_method", "youden"),
        )
        tables.append(
            prediction_frame(ENSEMBLE_MODEL, spec, y_test, np.mean(probs, axis=0), threshold)
        )
        logger.info("Ensemble of %s: %d members %s", held_out, len(members), members)
    predictions = pd.concat(tables, ignore_index=True) if tables else empty_predictions()
    history = (
        pd.concat(histories, ignore_index=True)
        if histories
        else pd.DataFrame(columns=list(HISTORY_COLUMNS))
    )
    return predictions, history


def _ensemble_sources(
    tokens: pd.DataFrame, spec: FoldSpec, ensemble: dict[str, Any], held_out: str
):
    """(source cohort, its labelled keys, labels) of every ensemble member: the source
    cohorts of the loco fold with ``min_samples`` labelled rows of both classes."""
    cohort = _cohort_of(tokens)
    for source in sorted({cohort[k] for k in spec.train_keys}):
        member_keys = [k for k in spec.train_keys if cohort[k] == source]
        y = _labels(tokens, member_keys)
        if len(member_keys) < int(ensemble.get("min_samples", 10)) or len(np.unique(y)) < 2:
            logger.info(
                "Ensemble of %s: skipping source %s (%d labelled, classes %s)",
                held_out,
                source,
                len(member_keys),
                np.unique(y),
            )
            continue
        yield source, member_keys, y


def _loco_with_readout(tokens, folds, params, held_out, features):
    """Zero-shot (``loco``) with a linear readout fitted on the other cohorts' labelled rows,
    for IC2Bert and its ablations; the ensemble averages one readout per source cohort."""
    arms = _ReadoutArms(features, params)
    zero_shot, ensemble = params.get("zero_shot") or {}, params.get("ensemble") or {}
    spec = _specs(folds, "loco", held_out, None)[0]
    method = params.get("threshold_method", "youden")
    seed = int(params.get("seed", 0))
    y_train, y_test = _labels(tokens, spec.train_keys), _labels(tokens, spec.test_keys)
    tables, histories = [], []
    if zero_shot.get("enabled", True):
        for model in arms.features:
            readout, oof, train_auroc = arms.fit(model, spec.train_keys, y_train, seed)
            y_prob = arms.predict(model, readout, spec.test_keys)
            tables.append(
                prediction_frame(model, spec, y_test, y_prob, fit_threshold(y_train, oof, method))
            )
            histories.append(
                _readout_history(
                    readout, held_out, model, "loco", spec.trial, "zero_shot", train_auroc
                )
            )
    if ensemble.get("enabled", True):
        probs, train_probs, members = [], [], []
        for source, member_keys, y in _ensemble_sources(tokens, spec, ensemble, held_out):
            readout, _, train_auroc = arms.fit(MODEL, member_keys, y, seed)
            probs.append(arms.predict(MODEL, readout, spec.test_keys))
            train_probs.append(arms.predict(MODEL, readout, spec.train_keys))
            histories.append(
                _readout_history(
                    readout,
                    held_out,
                    ENSEMBLE_MODEL,
                    "loco",
                    spec.trial,
                    f"ensemble:{source}",
                    train_auroc,
                )
            )
            members.append(source)
        if not members:
            raise ValueError(
                f"ensemble of {held_out!r}: no source cohort has both classes and enough samples"
            )
        threshold = fit_threshold(y_train, np.mean(train_probs, axis=0), method)
        tables.append(
            prediction_frame(ENSEMBLE_MODEL, spec, y_test, np.mean(probs, axis=0), threshold)
        )
        logger.info("Ensemble of %s: %d members %s", held_out, len(members), members)
    predictions = pd.concat(tables, ignore_index=True) if tables else empty_predictions()
    history = (
        pd.concat(histories, ignore_index=True)
        if histories
        else pd.DataFrame(columns=list(HISTORY_COLUMNS))
    )
    return predictions, history


# --------------------------------------------------------------------------- sample size
def sample_size_analysis(
    tokens: pd.DataFrame,
    folds: pd.DataFrame,
    pretrained: dict[str, Any],
    params: dict[str, Any],
    held_out: str,
    features: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Test predictions after fine-tuning on balanced subsets of n_train target rows.

    For the configured cohorts only (others return an empty table): from the transfer fold of
    ``sample_size.trial``, draw ``n/2`` responders and ``n/2`` non-responders of target_train
    (``repeats`` draws per n, n up to the largest balanced size) and score target_test;
    n_train = 0 is the zero-shot head (other cohorts' labels only).
    """
    section = params.get("sample_size") or {}
    columns = {
        c: pd.Series(dtype=t)
        for c, t in zip(
            SAMPLE_SIZE_COLUMNS,
            ("str", "int64", "int64", "int64", "str", "int64", "float64"),
            strict=True,
        )
    }
    if held_out not in (section.get("cohorts") or []):
        return pd.DataFrame(columns)
    from icb_kedro.models.ic2bert.predict import pooled_features

    bundle = _bundle(pretrained, held_out)
    # The paper's analysis: one 80/20 split (transfer_paper split number ``trial``), its 80 %
    # subsampled to n training patients, its 20 % scored.
    paper_split = int(section.get("trial", 0))
    spec = next(
        (s for s in _specs(folds, "transfer_paper", held_out) if s.repeat == paper_split), None
    )
    if spec is None:
        raise ValueError(
            f"sample_size.trial {paper_split} is not an 80/20 split of {held_out!r} "
            "(folds.lodocv.paper.n_trials)"
        )
    trial = spec.trial
    cohort = _cohort_of(tokens)
    target = np.asarray([k for k in spec.train_keys if cohort[k] == held_out])
    y_target = _labels(tokens, list(target))
    y_test = _labels(tokens, spec.test_keys)
    largest = 2 * int(min((y_target == 1).sum(), (y_target == 0).sum()))
    sizes = sorted(
        {
            int(n)
            for n in section.get("n_train", [2, 4, 8])
            if 0 < int(n) <= largest and int(n) % 2 == 0
        }
    )
    seed = int(params.get("seed", 0))
    rows = []

    def add(n: int, repeat: int, y_prob: np.ndarray) -> None:
        rows.append(
            pd.DataFrame(
                {
                    "cohort": held_out,
                    "n_train": n,
                    "repeat": repeat,
                    "trial": trial,
                    SAMPLE_KEY: spec.test_keys,
                    "y_true": y_test,
                    "y_prob": y_prob,
                }
            )
        )

    loco = _specs(folds, "loco", held_out, None)[0]
    source_keys = loco.train_keys
    if readout_of(params) != "pooled_head":
        if features is None:
            features = readout_features_table(
                tokens,
                pretrained,
                {**params, "ablations": {"random_init": False, "token_lr": False}},
                held_out,
            )
        arms = _ReadoutArms(features, params, arms=(MODEL,))
        readout, _, _ = arms.fit(MODEL, source_keys, _labels(tokens, source_keys), seed)
        add(0, 0, arms.predict(MODEL, readout, spec.test_keys))
        for n in sizes:
            for repeat in range(int(section.get("repeats", 3))):
                rng = np.random.default_rng([seed, n, repeat])
                chosen = sorted(
                    [
                        *rng.choice(target[y_target == 1], n // 2, replace=False),
                        *rng.choice(target[y_target == 0], n // 2, replace=False),
                    ]
                )
                readout, _, _ = arms.fit(
                    MODEL, chosen, _labels(tokens, chosen), seed + 1000 * n + repeat
                )
                add(n, repeat, arms.predict(MODEL, readout, spec.test_keys))
        return pd.concat(rows, ignore_index=True)[list(SAMPLE_SIZE_COLUMNS)]
    keys = sorted(set(source_keys) | set(spec.test_keys))
    features = dict(
        zip(
            keys,
            pooled_features(bundle.config, bundle.params, token_matrix(tokens, keys)),
            strict=True,
        )
    )
    zero = params.get("zero_shot") or {}
    head_params, _, _ = _train_source_model(
        bundle, features, tokens, source_keys, params, zero, seed
    )
    add(0, 0, _predict_with(bundle, head_params, features, tokens, spec.test_keys, zero, params))
    for n in sizes:
        for repeat in range(int(section.get("repeats", 3))):
            rng = np.random.default_rng([seed, n, repeat])
            chosen = [
                *rng.choice(target[y_target == 1], n // 2, replace=False),
                *rng.choice(target[y_target == 0], n // 2, replace=False),
            ]
            result, _ = _fit_full(
                bundle,
                bundle.params,
                sorted(chosen),
                tokens,
                params,
                seed + 1000 * n + repeat,
                _cohort_size(tokens, held_out),
            )
            add(
                n,
                repeat,
                _score(
                    bundle,
                    result.params,
                    spec.test_keys,
                    tokens,
                    int(params.get("eval_batch_size", 64)),
                ),
            )
    return pd.concat(rows, ignore_index=True)[list(SAMPLE_SIZE_COLUMNS)]


# --------------------------------------------------------------------------- registry
def register_best_model(
    best_model: dict[str, Any], params: dict[str, Any], held_out: str
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Hand the chosen bundle to the registry dataset, plus a one-row record of it.

    The record is what downstream nodes (``predict``) depend on, so they run after the
    model is logged (Kedro saves all outputs of a node before running its dependents).
    """
    metadata = best_model["metadata"]
    if metadata.get("held_out") != held_out:
        raise ValueError(f"model of {metadata.get('held_out')!r} registered for {held_out!r}")
    record = pd.DataFrame(
        [
            {
                "held_out": held_out,
                "namespace": namespace_for(held_out),
                "model_name": ic2bert_model_name(held_out),
                "trial": int(metadata["trial"]),
                "inner_val_score": float(metadata["inner_val_score"]),
                "selection": metadata["selection"],
                "best_epoch": int(metadata["finetune_best_epoch"]),
            }
        ]
    )
    return best_model, record[list(REGISTRY_COLUMNS)]


# --------------------------------------------------------------------------- cross-fold
def combine_predictions(*tables: pd.DataFrame) -> pd.DataFrame:
    """All folds' predictions, validated by the evaluation layer (``predictions_ic2bert``)."""
    from icb_kedro.evaluation.summary import validate_predictions

    non_empty = [t for t in tables if len(t)]
    if not non_empty:
        raise ValueError("IC2Bert produced no predictions (every protocol disabled?)")
    return validate_predictions(pd.concat(non_empty, ignore_index=True))


def combine_tables(*tables: pd.DataFrame) -> pd.DataFrame:
    non_empty = [t for t in tables if len(t)]
    return pd.concat(non_empty, ignore_index=True) if non_empty else tables[0].iloc[0:0]


def compute_fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, protocol, cohort, trial): becomes one nested MLflow
    run (project hook)."""
    from icb_kedro.evaluation.summary import fold_metrics

    return fold_metrics(predictions)


def summarize_cohorts(predictions: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    from icb_kedro.evaluation.summary import cohort_summary

    evaluation = params.get("evaluation") or {}
    return cohort_summary(
        predictions, n_boot=int(evaluation.get("n_boot", 1000)), seed=int(evaluation.get("seed", 0))
    )


LEARNING_CHECK_COLUMNS = (
    "model",
    "protocol",
    "cohort",
    "repeat",
    "n_splits",
    "n_train",
    "n_test",
    "train_auroc",
    "inner_cv_auroc",
    "test_auroc",
    "test_auroc_split_mean",
    "test_prob_sd",
)


def learning_check(predictions: pd.DataFrame, history: pd.DataFrame) -> pd.DataFrame:
    """Does each fitted model learn? Per (model, protocol, cohort, repeat): its fit on its
    training rows (in-sample and inner-CV AUROC, mean over the repeat's splits), its held-out
    AUROC on the repeat's pooled out-of-fold predictions (as every results table) and, beside
    it, the mean of the splits' own AUROCs (splits holding one class skipped): a gap between
    the two shows fold models that rank on different scales, which pooling penalises. And the
    spread of its held-out probabilities (a near-constant predictor is a defect, whatever its
    AUROC)."""
    fits = history[history["member"].isin(["", "zero_shot"])] if len(history) else history
    fit = (
        fits.groupby(["model", "protocol", "held_out", "trial"])
        .agg(train_auroc=("train_auroc", "max"), inner_cv_auroc=("val_auroc", "max"))
        .reset_index()
        .rename(columns={"held_out": "cohort"})
        if len(fits)
        else pd.DataFrame(
            columns=["model", "protocol", "cohort", "trial", "train_auroc", "inner_cv_auroc"]
        )
    )
    rows = []
    for (model, protocol, cohort, repeat), group in predictions.groupby(
        ["model", "protocol", "cohort", "repeat"], sort=True
    ):
        splits = group.groupby("trial")
        fitted = fit[
            (fit["model"] == model)
            & (fit["protocol"] == protocol)
            & (fit["cohort"] == cohort)
            & fit["trial"].isin(splits.groups)
        ]
        split_aurocs = [_auroc(g["y_true"].to_numpy(), g["y_prob"].to_numpy()) for _, g in splits]
        rows.append(
            {
                "model": model,
                "protocol": protocol,
                "cohort": cohort,
                "repeat": int(repeat),
                "n_splits": splits.ngroups,
                "n_train": int(round(splits["n_train"].first().mean())),
                "n_test": len(group),
                "train_auroc": pd.to_numeric(fitted["train_auroc"]).mean(),
                "inner_cv_auroc": pd.to_numeric(fitted["inner_cv_auroc"]).mean(),
                "test_auroc": _auroc(group["y_true"].to_numpy(), group["y_prob"].to_numpy()),
                "test_auroc_split_mean": float(np.nanmean(split_aurocs))
                if np.isfinite(split_aurocs).any()
                else float("nan"),
                "test_prob_sd": float(group["y_prob"].std(ddof=0)),
            }
        )
    return pd.DataFrame(rows, columns=list(LEARNING_CHECK_COLUMNS))


def summarize_learning_check(check: pd.DataFrame) -> pd.DataFrame:
    """Mean over cohorts (of per-cohort means over repeats) per model and protocol."""
    per_cohort = check.groupby(["model", "protocol", "cohort"])[
        ["train_auroc", "inner_cv_auroc", "test_auroc", "test_auroc_split_mean", "test_prob_sd"]
    ].mean()
    summary = per_cohort.groupby(["model", "protocol"]).agg(["mean"]).droplevel(1, axis=1)
    summary["n_cohorts"] = per_cohort.groupby(["model", "protocol"])["test_auroc"].count()
    return summary.reset_index()


def summarize_sample_size(sample_size: pd.DataFrame) -> pd.DataFrame:
    """Test AUROC per (cohort, n_train, repeat)."""
    rows = []
    for (cohort, n_train, repeat), group in sample_size.groupby(
        ["cohort", "n_train", "repeat"], sort=True
    ):
        metrics = binary_metrics(group["y_true"].to_numpy(), group["y_prob"].to_numpy())
        rows.append(
            {
                "cohort": cohort,
                "n_train": int(n_train),
                "repeat": int(repeat),
                "n_test": len(group),
                "auroc": metrics["auroc"],
            }
        )
    return pd.DataFrame(rows, columns=["cohort", "n_train", "repeat", "n_test", "auroc"])


def plot_auroc(fold_metrics: pd.DataFrame):
    """Test AUROC per held-out cohort and protocol (mean +/- sd over trials)."""
    import matplotlib.pyplot as plt

    from icb_kedro.evaluation.summary import short_cohort_names

    table = fold_metrics.assign(arm=fold_metrics["model"] + " / " + fold_metrics["protocol"])
    stats = table.groupby(["cohort", "arm"])["auroc"].agg(["mean", "std"]).reset_index()
    cohorts = sorted(stats["cohort"].unique())
    arms = sorted(stats["arm"].unique())
    names = short_cohort_names(cohorts)
    figure, axis = plt.subplots(figsize=(max(6, 1.4 * len(cohorts)), 4))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        rows = stats[stats["arm"] == arm].set_index("cohort").reindex(cohorts)
        axis.bar(
            np.arange(len(cohorts)) + i * width,
            rows["mean"],
            width,
            yerr=rows["std"].fillna(0),
            label=arm,
            capsize=2,
        )
    axis.axhline(0.5, color="grey", lw=0.8, ls="--")
    axis.set_xticks(
        np.arange(len(cohorts)) + width * (len(arms) - 1) / 2,
        [names[c] for c in cohorts],
        rotation=30,
        ha="right",
    )
    axis.set(ylabel="test AUROC", ylim=(0, 1), title="IC2Bert by held-out cohort")
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


def plot_sample_size(summary: pd.DataFrame):
    """Test AUROC against the number of balanced fine-tuning samples (0 = zero-shot)."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for cohort, rows in summary.groupby("cohort"):
        stats = rows.groupby("n_train")["auroc"].agg(["mean", "std"]).reset_index()
        axis.errorbar(
            stats["n_train"],
            stats["mean"],
            yerr=stats["std"].fillna(0),
            marker="o",
            capsize=3,
            label=cohort,
        )
    axis.axhline(0.5, color="grey", lw=0.8, ls="--")
    axis.set(
        xlabel="balanced fine-tuning samples (0 = zero-shot head)",
        ylabel="test AUROC",
        ylim=(0, 1),
        title="IC2Bert sample-size analysis",
    )
    if len(summary):
        axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
