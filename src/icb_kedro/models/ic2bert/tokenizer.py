"""Per-gene quantile tokenizer (model_spec.md spec items 9, 10, 16).

The original code bins globally z-scored values into equal-width bins whose range is
re-fitted on train+test at every stage. Here each gene gets its own ``n_bins - 1`` inner
quantile edges, fitted on the training rows of a fold only (the pretraining pool, never the
held-out cohort), stored with the checkpoint and reused unchanged at fine-tuning and
prediction time.

Token rules:
    * data tokens are 0..n_bins-1; the [MASK] id is ``n_bins`` and is never produced here;
    * a gene the sample's cohort does not measure (NaN in the input) becomes the [MISSING]
      id ``n_bins + 1``. A dedicated id, not [MASK]: [MASK] means "hidden, predict me" and is
      an MLM target; [MISSING] is never a target and carries no expression, so the model
      learns a separate "absent" vector. Pretraining pools contain a real panel cohort
      (Mariathasan2018 lacks 556 of the 937 genes), so the model learns to work with it;
    * bins are fitted on the training rows that measure the gene (NaN-aware quantiles);
    * values beyond the fitted range clip to the edge bins (0 or n_bins-1);
    * ties: a value equal to one or more edges goes to the middle of the bins those edges
      span, ``(#edges < x + #edges <= x) // 2``; so a constant gene (all edges equal) puts
      every sample in the same middle bin, and a gene with a large tied mass (e.g. not
      detected) keeps that mass in one bin instead of stacking it on the top one.
This is numpy-only (no jax): the tokenizer is also used by the pyfunc model and pipelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from icb_kedro.schema import COHORT, LABEL, SAMPLE_KEY

SUPPORTED_N_BINS = (2, 4, 8, 16, 32, 64, 128)
TOKEN_DTYPE = np.int32


class QuantileBins(NamedTuple):
    """Frozen per-gene bin edges: ``edges[g]`` holds the n_bins-1 inner edges of ``genes[g]``."""

    genes: tuple[str, ...]
    edges: np.ndarray  # [n_genes, n_bins - 1], float64, non-decreasing per row
    n_bins: int

    @property
    def mask_id(self) -> int:
        return self.n_bins

    @property
    def missing_id(self) -> int:
        return self.n_bins + 1

    @property
    def vocab_size(self) -> int:
        return self.n_bins + 2

    def to_frame(self) -> pd.DataFrame:
        """One row per gene, columns ``gene, edge_1..edge_{n_bins-1}`` (parquet friendly)."""
        frame = pd.DataFrame(self.edges, columns=[f"edge_{i + 1}" for i in range(self.n_bins - 1)])
        frame.insert(0, "gene", list(self.genes))
        return frame

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> QuantileBins:
        edge_columns = [c for c in frame.columns if c.startswith("edge_")]
        if "gene" not in frame.columns or not edge_columns:
            raise ValueError("a tokenizer table needs a 'gene' column and edge_1..edge_k columns")
        edge_columns.sort(key=lambda c: int(c.split("_")[1]))
        return _validated(
            tuple(frame["gene"].astype(str)),
            frame[edge_columns].to_numpy(np.float64),
            len(edge_columns) + 1,
        )

    def to_dict(self) -> dict:
        return {"genes": list(self.genes), "edges": self.edges.tolist(), "n_bins": int(self.n_bins)}

    @classmethod
    def from_dict(cls, values: dict) -> QuantileBins:
        return _validated(
            tuple(values["genes"]), np.asarray(values["edges"], np.float64), int(values["n_bins"])
        )


def _validated(genes: tuple[str, ...], edges: np.ndarray, n_bins: int) -> QuantileBins:
    if n_bins not in SUPPORTED_N_BINS:
        raise ValueError(f"n_bins must be one of {SUPPORTED_N_BINS}, got {n_bins}")
    if edges.shape != (len(genes), n_bins - 1):
        raise ValueError(
            f"edges shape {edges.shape} does not match {len(genes)} genes x "
            f"{n_bins - 1} inner edges"
        )
    if len(set(genes)) != len(genes):
        raise ValueError("tokenizer genes are not unique")
    if not np.isfinite(edges).all():
        raise ValueError("tokenizer edges contain NaN or infinite values")
    if (np.diff(edges, axis=1) < 0).any():
        raise ValueError("tokenizer edges must be non-decreasing within each gene")
    return QuantileBins(genes, edges, n_bins)


def _matrix(
    frame: pd.DataFrame, genes: Sequence[str], where: str, allow_absent: bool = False
) -> np.ndarray:
    """The gene columns of ``frame`` in ``genes`` order, as float64; clear errors otherwise.

    NaN (a gene not measured) is kept; +-inf is an error. With ``allow_absent`` a gene that
    is not a column at all is read as NaN (not measured) instead of refused.
    """
    missing = [g for g in genes if g not in frame.columns]
    if missing and not allow_absent:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ValueError(
            f"{where}: {len(missing)} of the {len(genes)} tokenizer genes are missing: {shown}"
        )
    values = frame.reindex(columns=list(genes)).to_numpy(np.float64)
    bad = np.isinf(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"{where}: {int(bad.sum())} non-finite expression values, first at row {int(rows[0])} "
            f"gene {genes[int(cols[0])]!r}"
        )
    return values


def fit_quantile_bins(train: pd.DataFrame, genes: Sequence[str], n_bins: int = 4) -> QuantileBins:
    """Fit per-gene inner quantile edges at k / n_bins (k = 1..n_bins-1) on training rows only."""
    if n_bins not in SUPPORTED_N_BINS:
        raise ValueError(f"n_bins must be one of {SUPPORTED_N_BINS}, got {n_bins}")
    genes = tuple(str(g) for g in genes)
    if not genes:
        raise ValueError("fit_quantile_bins: empty gene list")
    if len(train) < 2:
        raise ValueError(f"fit_quantile_bins: need at least 2 training rows, got {len(train)}")
    values = _matrix(train, genes, "fit_quantile_bins")
    measured = (~np.isnan(values)).sum(axis=0)
    if (measured < 2).any():
        gene = genes[int(np.argmax(measured < 2))]
        raise ValueError(
            f"fit_quantile_bins: gene {gene!r} is measured in {int(measured.min())} training "
            "row(s); need >= 2"
        )
    levels = np.arange(1, n_bins) / n_bins
    edges = np.nanquantile(values, levels, axis=0).T  # [n_genes, n_bins - 1], measured rows only
    return _validated(genes, np.ascontiguousarray(edges), n_bins)


def tokenize_values(bins: QuantileBins, values: np.ndarray) -> np.ndarray:
    """Tokens [n_samples, n_genes] for a float matrix already in ``bins.genes`` order."""
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.shape[1] != len(bins.genes):
        raise ValueError(
            f"expected a [n_samples, {len(bins.genes)}] matrix, got shape {values.shape}"
        )
    # Count edges below / at-or-below each value, per gene (vectorised searchsorted).
    below = (bins.edges[None, :, :] < values[:, :, None]).sum(axis=2)
    at_or_below = (bins.edges[None, :, :] <= values[:, :, None]).sum(axis=2)
    tokens = (below + at_or_below) // 2  # ties go to the middle of the bins they span
    tokens[np.isnan(values)] = bins.missing_id  # gene not measured: [MISSING], never [MASK]
    return tokens.astype(TOKEN_DTYPE)


def tokenize(
    bins: QuantileBins, frame: pd.DataFrame, where: str = "tokenize", allow_absent: bool = False
) -> np.ndarray:
    """Tokens for a wide expression table; genes are selected by name, in the tokenizer's order.

    NaN values become [MISSING]; ``allow_absent`` also reads absent gene columns as missing.
    """
    return tokenize_values(bins, _matrix(frame, bins.genes, where, allow_absent))


#: The non-gene columns of a token table.
TOKEN_META = (COHORT, SAMPLE_KEY, LABEL)

#: The pretraining pool's two splits (masked-token training and validation rows).
SPLIT_TRAIN, SPLIT_VAL = "mlm_train", "mlm_val"


def token_matrix(tokens: pd.DataFrame, keys: list[str] | np.ndarray) -> np.ndarray:
    """Tokens [len(keys), n_genes] (int32) of the given sample keys, in that order."""
    indexed = tokens.set_index(SAMPLE_KEY)
    missing = [k for k in keys if k not in indexed.index]
    if missing:
        raise ValueError(f"{len(missing)} sample keys have no tokens, e.g. {missing[:3]}")
    genes = [c for c in tokens.columns if c not in TOKEN_META]
    return indexed.loc[list(keys), genes].to_numpy(np.int32)
