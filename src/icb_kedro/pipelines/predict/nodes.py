"""Nodes of the predict pipeline: read an expression file, score it with a registered model.

``predict.model`` chooses the model: ``ic2bert`` (the default; one model per held-out
cohort, registered by ``ic2bert_finetune``: tokenizer, weights and gene panel travel
inside it; panel genes the file lacks enter as [MISSING], its training policy), ``amu``
(``icb_amu``, trained on every labelled sample of its cohorts; it needs all its panel genes
and refuses a file that lacks any, naming them) or ``baseline`` (``icb_baseline``). The
output names the missing genes and their number. Loading a model is a read, so it happens
here; nothing is logged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from icb_kedro.hooks import registered_model_name
from icb_kedro.paths import project_root
from icb_kedro.schema import SAMPLE_KEY, require_genes

from .config import PredictConfig

logger = logging.getLogger(__name__)

LAYOUTS = ("gene_major", "sample_major")
SCALES = ("log2_tpm_milli", "log2_tpm1")


def _resolve(path: str) -> Path:
    resolved = Path(path).expanduser()
    return resolved if resolved.is_absolute() else project_root() / resolved


def _raw_table(path: Path) -> pd.DataFrame:
    """The file as ingestion sees a cohort file: header as row 0, every cell as read (no
    renaming of duplicated columns, no coercion), so both entry points share one validation."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        table = pd.read_parquet(path)
        body = table.astype(object).where(table.notna(), None).to_numpy()
        return pd.DataFrame([list(map(str, table.columns)), *body.tolist()], dtype=object)
    return pd.read_csv(
        path, sep="," if ".csv" in name else "\t", header=None, dtype=str, keep_default_na=True
    )


def read_expression_file(params: dict[str, Any]) -> pd.DataFrame:
    """One row per sample (index = sample id), one column per gene, values log2(TPM+1).

    ``input_layout``: ``gene_major`` (first column ``gene``, one column per sample, like the
    shared cohort files) or ``sample_major`` (one row per sample, first column = its id).
    ``input_scale``: ``log2_tpm_milli`` (log2(TPM+0.001), the shared files) or ``log2_tpm1``.
    Formats: .tsv/.tsv.gz/.txt (tab), .csv(.gz), .parquet.

    Validated by ingestion's own ``io.readers.parse_expression`` (same checks, same messages:
    duplicate ids, non-numeric or impossible values, empty samples, a wrong scale). A panel
    gene missing in every sample is absent (scored as [MISSING]); one missing in some samples
    only is an error naming them.
    """
    from icb_kedro.io.readers import parse_expression

    config = PredictConfig.of(params, "params:predict")
    if not config.input_path:
        raise ValueError("predict.input_path is not set: the expression file to score")
    path = _resolve(config.input_path)
    if not path.is_file():
        raise ValueError(f"predict.input_path {path} does not exist")
    layout, scale = config.input_layout, config.input_scale
    if layout not in LAYOUTS or scale not in SCALES:
        raise ValueError(
            f"predict.input_layout must be one of {LAYOUTS} and input_scale one of {SCALES}"
        )
    raw = _raw_table(path)
    if layout == "sample_major":
        raw = raw.T.reset_index(drop=True)
        raw.iloc[0, 0] = "gene"  # the id column's header: the transposed table is gene-major
        raw.columns = range(raw.shape[1])
    values, report = parse_expression(
        raw,
        str(path),
        missing_policy="absent_genes",
        scale=scale,
        scale_check=config.scale_check,
        setting="predict",
    )
    if scale == "log2_tpm_milli":
        from icb_kedro.io.scales import log2_tpm_plus_one  # the training conversion

        values = log2_tpm_plus_one(values)
    logger.info(
        "Read %d samples x %d genes from %s (%d genes absent)",
        *values.shape,
        path,
        report.get("absent_genes", 0),
    )
    return values.astype(np.float64)


# predict.model -> registered model name (None: IC2Bert's, per held-out cohort), the names
# the registry hook gives the catalog's registered-model datasets (one source).
REGISTERED_MODELS: dict[str, str | None] = {
    "ic2bert": None,
    "amu": registered_model_name("amu_registered_model"),
    "baseline": registered_model_name("baseline_registered_model"),
}


def model_uri_for(params: dict[str, Any], registered_models: pd.DataFrame) -> str:
    """``params.model_uri``, else the registered model named by ``params.model`` (IC2Bert:
    the one of ``params.held_out``): at ``model_version`` if given, else at ``model_alias``
    (``champion``), else the latest."""
    config = PredictConfig.of(params, "params:predict")
    if config.model_uri:
        return config.model_uri
    model = config.model or "ic2bert"
    if model not in REGISTERED_MODELS:
        raise ValueError(
            f"predict.model must be one of {sorted(REGISTERED_MODELS)}, got {model!r} "
            "(or set predict.model_uri)"
        )
    name = REGISTERED_MODELS[model]
    if name is None:
        held_out = config.held_out
        rows = registered_models[registered_models["held_out"] == held_out]
        if rows.empty:
            raise ValueError(
                f"predict.held_out {held_out!r} has no registered IC2Bert model; registered: "
                f"{registered_models['held_out'].tolist()} (or set predict.model_uri)"
            )
        name = rows["model_name"].iloc[0]
    if config.model_version:  # an explicit version wins over the alias
        return f"models:/{name}/{config.model_version}"
    if config.model_alias:
        return f"models:/{name}@{config.model_alias}"
    return f"models:/{name}/latest"


def score_expression(
    expression: pd.DataFrame, registered_models: pd.DataFrame, params: dict[str, Any]
) -> pd.DataFrame:
    """P(responder) per sample: ``sample_id, y_prob, model_uri, n_missing_genes, missing_genes``."""
    import mlflow

    uri = model_uri_for(params, registered_models)
    logger.info("Scoring %d samples with %s", len(expression), uri)
    import tempfile

    # Loading is a read: the model is copied out of the artifact store first (MLflow writes a
    # registered_model_meta file into the folder it loads from, which would be the store).
    # (The model's code folder that MLflow puts on sys.path is taken off again by the model's
    # own load_context: models.portable.release_code_path.)
    with tempfile.TemporaryDirectory(prefix="icb_predict_") as local:
        return _score_with(mlflow.pyfunc.load_model(uri, dst_path=local), uri, expression)


def _score_with(model, uri: str, expression: pd.DataFrame) -> pd.DataFrame:
    schema = model.metadata.get_input_schema()
    if schema is not None:
        # Check the genes here, not in MLflow's schema enforcement: its error lists every
        # extra column of the file (~1,400 genes for a cohort file) next to the missing ones.
        # The panel's genes (AMU's schema also names an optional sample_key, not read here).
        genes = [name for name in schema.input_names() if name != SAMPLE_KEY]
        if not set(genes) & set(expression.columns):
            require_genes(expression.columns, genes, uri)  # none of the panel: refuse, naming genes
        missing = [g for g in genes if g not in expression.columns or expression[g].isna().all()]
        if missing:
            logger.warning(
                "%s: the input lacks %d of %d panel genes (the model's missing-gene "
                "policy applies): %s",
                uri,
                len(missing),
                len(genes),
                ", ".join(missing[:20]),
            )
        expression = expression.reindex(columns=genes)
    else:
        missing = []
    scores = model.predict(expression)
    return pd.DataFrame(
        {
            "sample_id": expression.index.astype(str),
            "y_prob": np.asarray(scores["y_prob"], float),
            "model_uri": uri,
            "n_missing_genes": len(missing),
            "missing_genes": ",".join(missing),
        }
    )
