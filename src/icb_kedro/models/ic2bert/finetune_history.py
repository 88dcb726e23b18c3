"""Fine-tuning history tables of the IC2Bert protocols (``ic2bert_*_history``).

One row per epoch of a fine-tuning (``history_frame``: its losses, inner-validation AUROC, chosen
epoch and how it was chosen) or one row per linear-readout fit (``readout_history``: its
inner-CV AUROC), in ``HISTORY_COLUMNS``; ``auroc_or_nan`` is the AUROC they (and the learning check)
report, NaN when the rows hold one class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from icb_kedro.models.ic2bert.fold_inputs import MODEL

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


def history_frame(
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


def auroc_or_nan(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")


def readout_history(
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


def empty_history() -> pd.DataFrame:
    """A history table without rows (a protocol that is switched off)."""
    return pd.DataFrame(columns=list(HISTORY_COLUMNS))
