"""Checkpoints: resumable pretraining state (orbax-checkpoint) and portable model bundles.

* ``PretrainCheckpointer`` saves the full training state (params, optimiser state, JAX key,
  step), the best-so-far parameters and the epoch history every few epochs with orbax's
  ``CheckpointManager``; an interrupted pretraining resumes from the latest one. A
  fingerprint of (model config, training config, data, tokenizer) is stored with it, and
  a checkpoint with another fingerprint is ignored (never resumed into a different run).
* ``ModelBundle`` is what leaves a fold: model config + numpy parameters + the frozen
  tokenizer (spec item 9) + the gene panel order; plain Python/numpy so it pickles into
  the Kedro catalog and into the MLflow pyfunc without JAX objects.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from icb_kedro.models.ic2bert.config import IC2BertConfig
from icb_kedro.models.ic2bert.tokenizer import QuantileBins

logger = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-able parts and numpy arrays (identifies a training run)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            digest.update(str(part.shape).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


class PretrainCheckpointer:
    """Resumable pretraining checkpoints in ``directory`` (one sub-folder per saved epoch)."""

    def __init__(self, directory: str | Path, max_to_keep: int = 2) -> None:
        import orbax.checkpoint as ocp

        self.directory = Path(directory).resolve()
        self._ocp = ocp
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False
            ),
        )

    def save(
        self,
        epoch: int,
        state: Any,
        best: dict[str, Any],
        history: list[dict],
        run_fingerprint: str,
    ) -> None:
        ocp = self._ocp
        meta = {
            "epoch": int(epoch),
            "fingerprint": run_fingerprint,
            "best_accuracy": float(best["accuracy"]),
            "best_epoch": int(best["epoch"]),
            "history": history,
        }
        self._manager.save(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                best_params=ocp.args.StandardSave(best["params"]),
                meta=ocp.args.JsonSave(meta),
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def latest_epoch(self) -> int | None:
        return self._manager.latest_step()

    def restore_latest(self, state_template: Any, params_template: Any, run_fingerprint: str):
        """(state, best, history, epoch) from the latest checkpoint of this run, else None."""
        ocp = self._ocp
        epoch = self._manager.latest_step()
        if epoch is None:
            return None
        meta = self._manager.restore(epoch, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]
        if meta.get("fingerprint") != run_fingerprint:
            logger.warning(
                "Ignoring checkpoint in %s: it belongs to another run (fingerprint %s != %s)",
                self.directory,
                meta.get("fingerprint"),
                run_fingerprint,
            )
            return None
        import jax

        restored = self._manager.restore(
            epoch,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(state_template),
                best_params=ocp.args.StandardRestore(params_template),
            ),
        )
        state = jax.tree_util.tree_map(jax.numpy.asarray, restored["state"])
        best = {
            "params": jax.tree_util.tree_map(np.asarray, restored["best_params"]),
            "accuracy": meta["best_accuracy"],
            "epoch": meta["best_epoch"],
        }
        return state, best, list(meta["history"]), int(meta["epoch"])

    def close(self) -> None:
        self._manager.close()


class ModelBundle(NamedTuple):
    """A trained IC2Bert: everything needed to score new expression data."""

    config: IC2BertConfig
    params: dict[str, dict[str, np.ndarray]]  # Haiku params as numpy
    tokenizer: QuantileBins
    metadata: dict[str, Any]  # held_out, input transform, training summary ...

    @property
    def genes(self) -> tuple[str, ...]:
        return self.tokenizer.genes

    def to_dict(self) -> dict[str, Any]:
        """Plain Python / numpy form (what the catalog pickles)."""
        return {
            "config": self.config.to_dict(),
            "params": {
                m: {k: np.asarray(v) for k, v in leaves.items()}
                for m, leaves in self.params.items()
            },
            "tokenizer": self.tokenizer.to_dict(),
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelBundle:
        missing = {"config", "params", "tokenizer", "metadata"} - set(values)
        if missing:
            raise ValueError(f"not an IC2Bert model bundle: missing {sorted(missing)}")
        config = IC2BertConfig.from_dict(values["config"])
        tokenizer = QuantileBins.from_dict(values["tokenizer"])
        if len(tokenizer.genes) != config.n_genes or tokenizer.n_bins != config.n_bins:
            raise ValueError(
                f"bundle mismatch: tokenizer has {len(tokenizer.genes)} genes / {tokenizer.n_bins} "
                f"bins, model expects {config.n_genes} / {config.n_bins}"
            )
        params = {
            m: {k: np.asarray(v) for k, v in leaves.items()}
            for m, leaves in values["params"].items()
        }
        return cls(config, params, tokenizer, dict(values["metadata"]))


def history_frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records)
