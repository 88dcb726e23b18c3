"""What a registered model carries so that it loads where icb_kedro is not installed.

An MLflow pyfunc whose ``python_model`` is a class of this package is pickled *by reference*:
without help it loads only where ``icb_kedro`` is importable. Every registered model therefore
ships the source files of ``icb_kedro.models`` as MLflow ``code_paths`` (``code/icb_kedro/...``,
put first on ``sys.path`` by ``mlflow.pyfunc.load_model``), the pinned versions of the
libraries its own family's files import, a gene-panel signature and a synthetic input example.
Every family's code, not only its own: in one process the first model loaded provides
``icb_kedro`` for all later ones (Python imports a package once), so a copy holding one family
only made a second model of another family fail with ``No module named
'icb_kedro.models.<family>'``. A few hundred kB per model; the other families' libraries are
needed only by their own models.
The integration tests load and serve such a model from a virtual environment that has
neither icb_kedro nor Kedro. Where the project *is* installed and already imported, the
model's partial copy must not stay first on ``sys.path`` (worker processes of joblib or Dask
would import it instead of the project): every pyfunc's ``load_context`` calls
:func:`release_code_path`.

Bad input raises :class:`ModelInputError`: a ``ValueError`` for Python callers and an
``MlflowException(INVALID_PARAMETER_VALUE)`` for ``mlflow models serve``, which answers it
with HTTP 400 and this message (any other exception becomes a generic message).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # src/icb_kedro

#: Source files every model carries besides ``models/`` (see the module docstring).
COMMON_FILES = ("__init__.py", "schema.py")

#: Libraries the pyfunc code of each family imports (pinned to the versions that trained it;
#: cloudpickle unpickles the model object and warns on another version).
_COMMON_REQUIREMENTS = ("mlflow", "cloudpickle", "numpy", "pandas", "scikit-learn")
FAMILY_REQUIREMENTS = {
    "ic2bert": (*_COMMON_REQUIREMENTS, "jax", "jaxlib", "dm-haiku"),
    "amu": (*_COMMON_REQUIREMENTS, "paddlepaddle"),
    "baselines": (*_COMMON_REQUIREMENTS, "imbalanced-learn", "xgboost"),
}

#: Rows of the synthetic input example: models that z-score a cohort refuse fewer than 10.
EXAMPLE_ROWS = 10


class ModelInputError(MlflowException, ValueError):
    """Input a registered model refuses; HTTP 400 with this message when served."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


#: Fewest rows a ``cohort_zscore`` model accepts: its inputs are standardized over the rows
#: given (one cohort, as in training), so a handful of samples gives meaningless z-scores.
MIN_COHORT_ROWS = 10


def platt_scale(p: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """P(responder) after Platt scaling: sigmoid(intercept + slope * logit p). (0, 1) is the
    identity.

    p is clipped to [1e-6, 1 - 1e-6] before the logit, as where the map is fitted
    (``evaluation.calibration.calibration_slope``), so fit and application see the same logits.
    """
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1.0 - 1e-6)
    return 1.0 / (1.0 + np.exp(-(intercept + slope * np.log(p / (1.0 - p)))))


class PlattScaled:
    """A fitted classifier whose ``predict_proba`` is Platt-scaled (a map fitted on its
    training rows' out-of-fold probabilities, ``evaluation.calibration.fit_platt``). Lives
    here, in the code every registered model carries, so a pickled one loads without the project."""

    def __init__(self, estimator: Any, intercept: float, slope: float) -> None:
        self.estimator, self.intercept, self.slope = estimator, float(intercept), float(slope)

    @property
    def classes_(self) -> np.ndarray:
        return self.estimator.classes_

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        q = platt_scale(self.estimator.predict_proba(x)[:, 1], self.intercept, self.slope)
        return np.column_stack([1.0 - q, q])


def cohort_zscore(values: pd.DataFrame) -> pd.DataFrame:
    """Gene-wise z-scores over the given rows (ddof 0; constant genes map to 0).

    Label-free but transductive (the scores of a sample depend on the cohort it comes with),
    exactly like the per-cohort standardization the model was trained on; see docs/models.md.
    """
    if len(values) < MIN_COHORT_ROWS:
        raise ModelInputError(
            "this model standardizes its input per cohort: pass a whole cohort (>= "
            f"{MIN_COHORT_ROWS} samples), got {len(values)} row(s)"
        )
    sd = values.std(ddof=0)
    z = (values - values.mean()) / sd.replace(0.0, np.nan)
    z.loc[:, (sd == 0.0).to_numpy()] = 0.0  # constant genes -> 0; unmeasured (NaN) genes stay NaN
    return z


def numeric_panel(frame: pd.DataFrame, genes: Sequence[str], model: str) -> pd.DataFrame:
    """The panel columns of ``frame`` as float64, absent genes as all-NaN columns.

    Refuses a non-table, an input with none of the panel genes (naming them: e.g. Ensembl IDs
    instead of HGNC symbols), no rows, non-numeric or infinite values, a gene missing for
    some samples only (a gene is measured for the whole cohort or absent), and values not on
    the log2(TPM+1) scale (:func:`check_log2_tpm1`).
    """
    from icb_kedro.schema import require_genes

    if not isinstance(frame, pd.DataFrame):
        raise ModelInputError(
            f"{model} expects a pandas DataFrame (samples x genes), got {type(frame).__name__}"
        )
    if not any(
        g in frame.columns for g in genes
    ):  # first: MLflow's schema check hands over no rows once it dropped every unknown column
        try:
            require_genes(frame.columns, genes, model)
        except ValueError as error:
            raise ModelInputError(str(error)) from None
    if len(frame) == 0:
        raise ModelInputError("input has no rows")
    raw = frame.reindex(columns=list(genes))
    values = raw.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    non_numeric = values.isna() & raw.notna()
    if non_numeric.to_numpy().any():
        bad = values.columns[non_numeric.any(axis=0)].tolist()
        raise ModelInputError(f"input has non-numeric values in genes {bad[:20]}")
    if np.isinf(values.to_numpy()).any():
        bad = values.columns[np.isinf(values.to_numpy()).any(axis=0)].tolist()
        raise ModelInputError(f"input has infinite values in genes {bad[:20]}")
    partial = values.isna().any(axis=0) & ~values.isna().all(axis=0)
    if partial.any():
        gene = partial.index[partial.to_numpy()][0]
        rows = values.index[values[gene].isna()].tolist()
        raise ModelInputError(
            f"input has missing values in gene {gene!r} for some samples only (e.g. {rows[:5]}); a "
            "gene is either measured for the whole cohort or absent"
        )
    check_log2_tpm1(values, model)
    return values


def check_log2_tpm1(values: pd.DataFrame, model: str) -> None:
    """Refuse values that cannot be log2(TPM+1), with the tests that hold on any gene panel
    (the reader's floor test needs the whole transcriptome): every value in [0, log2(1e6+1)],
    and each sample's TPM over the panel summing to at most 1e6. The shared cohort files'
    log2(TPM+0.001) (down to -9.97), z-scores (negative) and raw TPM or counts (above 19.93,
    or summing past 1e6) all fail; scored as is, they gave other probabilities silently."""
    from icb_kedro.schema import SCALE_TOLERANCE, TPM_TOTAL, tpm_totals_over_limit

    x = values.to_numpy(np.float64)
    ceiling = float(np.log2(TPM_TOTAL + 1.0))
    with np.errstate(invalid="ignore"):
        outside = (x < -SCALE_TOLERANCE) | (x > ceiling + SCALE_TOLERANCE)
    if outside.any():
        r, c = np.argwhere(outside)[0]
        raise ModelInputError(
            f"{model} expects log2(TPM+1), in [0, {ceiling:.2f}]: {int(outside.sum())} value(s) "
            f"are outside, e.g. {x[r, c]:.3f} (sample {values.index[r]!r}, gene "
            f"{values.columns[c]!r}). log2(TPM+0.001), the shared cohort files' scale, goes down "
            "to -9.966, z-scores are negative, raw TPM and counts go above: convert to log2(TPM+1)"
        )
    totals, over = tpm_totals_over_limit(x, 1.0, axis=1)
    if len(over):
        listed = {values.index[i]: float(f"{totals[i]:.3g}") for i in over[:5]}
        raise ModelInputError(
            f"{model} expects log2(TPM+1), but the panel genes' TPM of {len(over)} sample(s) sum "
            f"above 1e6 (sample: sum) {listed}; a sample's TPM sums to 1e6 over all its genes. "
            "Un-logged TPM or counts do this: convert to log2(TPM+1)"
        )


def missing_panel_genes(frame: pd.DataFrame, genes: Sequence[str]) -> list[str]:
    """Panel genes the input does not measure: absent columns or columns NaN for every row."""
    return [g for g in genes if g not in frame.columns or frame[g].isna().all()]


def pinned_requirements(family: str) -> list[str]:
    """``package==version`` for the libraries ``family``'s pyfunc imports (this environment's)."""
    pins = []
    for package in FAMILY_REQUIREMENTS[family]:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def copy_model_code(destination: str | Path) -> Path:
    """Copy the ``.py`` files registered models need into ``destination/icb_kedro``: the
    common ones and every model family's (see the module docstring)."""
    target = Path(destination) / PACKAGE_ROOT.name
    sources = [PACKAGE_ROOT / name for name in COMMON_FILES]
    sources += sorted((PACKAGE_ROOT / "models").rglob("*.py"))
    for source in sources:
        copied = target / source.relative_to(PACKAGE_ROOT)
        copied.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copied)
    return target


@contextlib.contextmanager
def model_code_paths() -> Iterator[list[str]]:
    """``code_paths`` for ``mlflow.pyfunc.log_model``: a temporary copy of the models' code."""
    with tempfile.TemporaryDirectory(prefix="icb_model_code_") as tmp:
        yield [str(copy_model_code(tmp))]


def _is_model_code(entry: str) -> bool:
    """A ``code/`` folder MLflow put on sys.path for one of these models (a partial copy)."""
    package = Path(entry) / PACKAGE_ROOT.name
    return (package / "models" / "portable.py").is_file() and not (package / "pipelines").is_dir()


def release_code_path() -> list[str]:
    """Take model code folders back off ``sys.path`` when ``icb_kedro`` was imported from
    somewhere else (the installed project); keep them where the model's copy *is* the
    package (an environment without the project). Returns the entries removed."""
    import sys

    package = sys.modules.get(PACKAGE_ROOT.name)
    origin = (
        Path(package.__file__).resolve().parent
        if package is not None and package.__file__
        else None
    )
    removed = [
        entry
        for entry in sys.path
        if entry
        and _is_model_code(entry)
        and origin is not None
        and (Path(entry) / PACKAGE_ROOT.name).resolve() != origin
    ]
    for entry in removed:
        sys.path.remove(entry)
    return removed


def gene_signature(
    genes: Sequence[str], output_column: str, extra_inputs: Sequence[tuple[str, str]] = ()
):
    """One optional ``double`` column per panel gene (+ ``extra_inputs``), one output column.

    Optional, so MLflow's schema check lets a cohort lacking a gene through to the model's own
    policy (IC2Bert: the [MISSING] token; AMU: a refusal naming the genes).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = [ColSpec("double", g, required=False) for g in genes]
    inputs += [ColSpec(kind, name, required=False) for name, kind in extra_inputs]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double", output_column)]))


def synthetic_input_example(
    genes: Sequence[str], n_rows: int = EXAMPLE_ROWS, seed: int = 0
) -> pd.DataFrame:
    """A made-up cohort in the input layout: log2(TPM+1) of TPM drawn around 30 per gene, so
    it passes :func:`check_log2_tpm1` (no patient data is stored with a model). MLflow
    derives the documented REST payload from it."""
    rng = np.random.default_rng(seed)
    values = np.round(np.log2(rng.gamma(0.5, 60.0, size=(n_rows, len(genes))) + 1.0), 3)
    return pd.DataFrame(values, columns=list(genes), index=[f"example_{i}" for i in range(n_rows)])


def log_pyfunc(
    python_model: object,
    name: str,
    family: str,
    genes: Sequence[str],
    output_column: str = "y_prob",
    extra_inputs: Sequence[tuple[str, str]] = (),
    **kwargs,
):
    """``mlflow.pyfunc.log_model`` with what a model of ``family`` needs to travel: its code,
    pinned requirements, the gene signature and a synthetic input example (``kwargs`` such as
    ``registered_model_name`` pass through and may override any of them)."""
    kwargs.setdefault("signature", gene_signature(genes, output_column, extra_inputs))
    kwargs.setdefault("pip_requirements", pinned_requirements(family))
    kwargs.setdefault("input_example", synthetic_input_example(genes))
    with warnings.catch_warnings(), model_code_paths() as code_paths:
        # The signature is explicit (the gene panel), so MLflow's advice to add predict()
        # type hints does not apply; the model object is pickled by reference to its code.
        warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method.*")
        warnings.filterwarnings("ignore", message=".*Passing a Python object as `python_model`.*")
        kwargs.setdefault("code_paths", code_paths)
        return mlflow.pyfunc.log_model(name=name, python_model=python_model, **kwargs)


def load_model(model_uri: str, **kwargs):
    """kedro-mlflow flavor hook of every model here: the logged model as a generic pyfunc."""
    return mlflow.pyfunc.load_model(model_uri, **kwargs)
