"""The registered IC2Bert model of a held-out cohort: its bundle and its registry record.

``finetuned_bundle`` / ``readout_bundle`` package the transfer trial picked on training rows
(``transfer.TransferPick``) with the fold's tokenizer, threshold, input transform
(``input_transform``) and provenance into a ``ModelBundle`` dict; ``registry_record`` is the
one-row record (``REGISTRY_COLUMNS``) of a registered bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from icb_kedro.evaluation.protocols import FoldSpec
from icb_kedro.models.ic2bert.fold_inputs import cohort_of
from icb_kedro.paths import ic2bert_model_name, namespace_for

REGISTRY_COLUMNS = (
    "held_out",
    "namespace",
    "model_name",
    "trial",
    "inner_val_score",
    "selection",
    "best_epoch",
)


def input_transform(source: str) -> str:
    """How the registered model must preprocess a new cohort to match its training input
    (``source``: the ``tokenization.input`` table it was trained on)."""
    return "cohort_zscore" if source == "expression_standardized" else "none"


def _provenance(tokens: pd.DataFrame, held_out: str, train_keys: Sequence[str]) -> dict[str, Any]:
    """What the registered model was trained on (its registry tags and description): the
    pretraining cohorts and its labelled training rows, counting those of h itself (a
    transfer model saw h's ``target_train``: scoring those patients again is in-sample)."""
    cohort = cohort_of(tokens)
    others = sorted(set(cohort) - {held_out})
    return {
        "pretrain_cohorts": ", ".join(others),
        "n_finetune_rows": len(train_keys),
        "n_finetune_rows_held_out": int((cohort.loc[list(train_keys)] == held_out).sum()),
    }


def _transfer_bundle(
    bundle, model_params, source: str, spec: FoldSpec, threshold: float, **metadata
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
            "input_transform": input_transform(source),
            "n_genes": len(bundle.genes),
            **metadata,
        },
    ).to_dict()


def finetuned_bundle(
    bundle, pick, tokens: pd.DataFrame, held_out: str, source: str
) -> dict[str, Any]:
    """The registered bundle of a fine-tuned transfer trial (``pick.model``: its
    ``FinetuneResult``; ``pick.score``: minus its inner-validation loss; ``source``: the
    input table, ``input_transform``)."""
    result = pick.model
    return _transfer_bundle(
        bundle,
        result.params,
        source,
        pick.spec,
        pick.threshold,
        stage="fine-tuned",
        inner_val_score=float(result.score),
        inner_val_loss=float(-pick.score),
        selection=result.selection,
        finetune_best_epoch=int(result.best_epoch),
        **_provenance(tokens, held_out, pick.train_keys),
    )


def readout_bundle(
    bundle,
    pick,
    readout_kind: str,
    tokens: pd.DataFrame,
    held_out: str,
    source: str,
) -> dict[str, Any]:
    """The registered bundle of a linear-readout transfer trial: the pretrained encoder and
    the fitted readout (``pick.model``; ``pick.score``: its inner-CV AUROC)."""
    return _transfer_bundle(
        bundle,
        bundle.params,
        source,
        pick.spec,
        pick.threshold,
        stage="pretrained encoder + linear readout",
        inner_val_score=float(pick.score),
        inner_val_loss=float("nan"),
        selection="readout_cv_auroc",
        finetune_best_epoch=0,
        readout_kind=readout_kind,
        readout=pick.model.to_dict(),
        **_provenance(tokens, held_out, pick.train_keys),
    )


def registry_record(metadata: dict[str, Any], held_out: str) -> pd.DataFrame:
    """The one-row registry record of h's registered bundle (its ``metadata``)."""
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
    return record[list(REGISTRY_COLUMNS)]
