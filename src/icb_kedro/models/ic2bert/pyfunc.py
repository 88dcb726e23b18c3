"""IC2Bert as an MLflow pyfunc model, and a kedro-mlflow "flavor" module that logs it.

``IC2BertPyfunc`` bundles the model config, weights (numpy), the frozen tokenizer and the
gene panel, so a registered model scores a new cohort's expression with no project data;
the few source files it needs travel with it (``models.portable``), so it also loads where
icb_kedro is not installed:

    model = mlflow.pyfunc.load_model("models:/icb_ic2bert_fold_Kidney_ICB_Miao2018/1")
    scores = model.predict(expression)   # one row per sample, one column per gene

Input: one row per sample of ONE cohort, one column per gene (HGNC symbols), values
log2(TPM + 1). Extra columns are ignored. A panel gene the cohort does not measure (column
absent, or NaN for every sample) enters as the [MISSING] token, the policy the model was
trained with (a warning names the genes and their number); a gene NaN for only some
samples is refused.
When the model was trained on per-cohort z-scores (``input_transform = cohort_zscore``,
the default ``expression_standardized`` input), the rows passed in are z-scored gene-wise
together, exactly as ``harmonization.standardize_per_cohort`` does for the training cohorts
(ddof 0, constant genes -> 0); so pass a whole cohort, not single samples.

This module is also usable as the ``flavor`` of
``kedro_mlflow.io.models.MlflowModelTrackingDataset`` (it provides ``log_model``/``load_model``):
kedro-mlflow's plain ``mlflow.pyfunc`` flavor cannot attach a data-dependent input signature (the
gene list), this one does.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import pandas as pd

from icb_kedro.models.ic2bert.checkpoint import ModelBundle
from icb_kedro.models.portable import (  # noqa: F401 - cohort_zscore, MIN_COHORT_ROWS, load_model: this module's API too
    MIN_COHORT_ROWS,
    ModelInputError,
    cohort_zscore,
    gene_signature,
    load_model,
    log_pyfunc,
    missing_panel_genes,
    numeric_panel,
    release_code_path,
)

logger = logging.getLogger(__name__)

INPUT_TRANSFORMS = ("cohort_zscore", "none")
OUTPUT_COLUMN = "y_prob"


def check_input(frame: pd.DataFrame, genes: tuple[str, ...]) -> pd.DataFrame:
    """The panel columns of ``frame`` as float64 (unmeasured genes as NaN columns), refusing
    non-numeric, infinite or partially missing values (``models.portable.numeric_panel``)."""
    values = numeric_panel(frame, genes, "IC2Bert")
    missing = missing_panel_genes(values, genes)
    if missing:
        logger.warning(
            "input lacks %d of the model's %d genes (entered as [MISSING]): %s",
            len(missing),
            len(genes),
            ", ".join(missing[:20]),
        )
    return values


class IC2BertPyfunc(mlflow.pyfunc.PythonModel):
    """Registered IC2Bert: tokenizer + weights + gene panel; predicts P(responder)."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.bundle = ModelBundle.from_dict(bundle).to_dict()  # validated, plain numpy
        self._model: ModelBundle | None = None

    @property
    def model(self) -> ModelBundle:
        if self._model is None:
            self._model = ModelBundle.from_dict(self.bundle)
        return self._model

    @property
    def genes(self) -> tuple[str, ...]:
        return self.model.genes

    def load_context(self, context: Any) -> None:
        release_code_path()  # the project's own icb_kedro, when installed, stays the one imported
        self._model = ModelBundle.from_dict(self.bundle)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from icb_kedro.models.ic2bert.predict import score_frame

        values = check_input(model_input, self.genes)
        transform = self.model.metadata.get("input_transform", "none")
        if transform not in INPUT_TRANSFORMS:
            raise ValueError(f"unknown input_transform {transform!r} in the model metadata")
        if transform == "cohort_zscore":
            values = cohort_zscore(values)
        return pd.DataFrame(
            {OUTPUT_COLUMN: score_frame(self.model, values)}, index=model_input.index
        )

    def __getstate__(self) -> dict[str, Any]:
        return {"bundle": self.bundle}  # never pickle jitted functions

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.bundle = state["bundle"]
        self._model = None


def signature_for(genes: tuple[str, ...]):
    """Optional double columns, one per panel gene (absent genes reach the [MISSING] policy)."""
    return gene_signature(genes, OUTPUT_COLUMN)


def log_model(model: IC2BertPyfunc | dict[str, Any], name: str, **kwargs: Any):
    """kedro-mlflow flavor hook: log the pyfunc with its gene-panel input signature, code,
    pinned requirements and a synthetic input example (``models.portable.log_pyfunc``).

    ``model`` is an ``IC2BertPyfunc`` or a model bundle dict. Extra ``kwargs`` (e.g.
    ``registered_model_name``) go to ``mlflow.pyfunc.log_model``.
    """
    python_model = model if isinstance(model, IC2BertPyfunc) else IC2BertPyfunc(model)
    return log_pyfunc(python_model, name, "ic2bert", python_model.genes, OUTPUT_COLUMN, **kwargs)
