"""The deployed baseline: the best classical model refitted on every labelled patient, as an
MLflow pyfunc (registered as ``icb_baseline``), and the kedro-mlflow flavor that logs it.

Input: one whole cohort, one row per sample, one column per panel gene (HGNC symbols),
log2(TPM+1); extra columns are ignored. The rows are z-scored gene-wise together, as
harmonization standardizes each training cohort, then the fitted scikit-learn pipeline
(scaler, gene selection, classifier; SMOTE never runs at prediction) gives ``y_prob``.
Every panel gene is needed (the baselines' panel is the genes every cohort measures): a
missing one is refused, naming it. Imports only numpy/pandas/mlflow here; the pickled
pipeline needs scikit-learn, imbalanced-learn and (for XGBoost) xgboost, pinned with it.
"""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from icb_kedro.models.portable import (  # noqa: F401 - load_model: the flavor's loader
    ModelInputError,
    cohort_zscore,
    load_model,
    log_pyfunc,
    missing_panel_genes,
    numeric_panel,
    release_code_path,
)

OUTPUT_COLUMN = "y_prob"


class BaselinePyfunc(mlflow.pyfunc.PythonModel):
    """P(responder) of a whole cohort from a fitted baseline pipeline over a fixed gene panel."""

    def __init__(self, estimator: Any, genes: list[str], metadata: dict[str, Any]) -> None:
        self.estimator = estimator
        self.genes = list(genes)
        self.metadata = dict(metadata)

    def load_context(self, context: Any) -> None:
        release_code_path()  # the project's own icb_kedro, when installed, stays the one imported

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        values = numeric_panel(
            model_input, self.genes, f"the {self.metadata.get('family', 'baseline')} baseline"
        )
        missing = missing_panel_genes(values, self.genes)
        if missing:
            raise ModelInputError(
                f"input lacks {len(missing)} of the model's {len(self.genes)} genes "
                f"({', '.join(missing[:20])}); the baseline needs every panel gene (it was trained "
                "on genes every cohort measures)"
            )
        z = cohort_zscore(values)
        y_prob = self.estimator.predict_proba(z.to_numpy(np.float64))[:, 1]
        return pd.DataFrame({OUTPUT_COLUMN: np.clip(y_prob, 0.0, 1.0)}, index=model_input.index)

    def registry_metadata(self) -> dict[str, Any]:
        """Tags and description of the registered version (read by ``hooks.RegistryAliasHook``)."""
        m = self.metadata
        return {
            **m,
            "description": (
                f"{m['family']} baseline, chosen as the best classical model by mean zero-shot "
                f"(LOCO) AUROC over {m['n_cohorts']} held-out cohorts ({m['selection_auroc']}), "
                f"refitted on all {m['n_train']} labelled patients of those cohorts "
                f"(hyper-parameters by {m['inner_splits']}-fold inner CV: {m['best_params']}). "
                f"Input: one whole cohort, samples x {len(self.genes)} genes, log2(TPM+1); "
                "z-scored per cohort inside. Output: y_prob = P(responder)."
            ),
        }


def log_model(model: BaselinePyfunc, name: str, **kwargs: Any):
    """kedro-mlflow flavor hook: the pyfunc with its code, pins, signature and input example."""
    return log_pyfunc(model, name, "baselines", model.genes, OUTPUT_COLUMN, **kwargs)
