"""A read-only Kedro dataset that loads ``None`` when the wrapped data does not exist.

The interpretation pipeline reads what the model pipelines persisted (predictions,
summaries, fitted fold models). A model pipeline that was not run has written nothing;
its section of the report then says "not run" instead of the whole run failing on a
missing file. Used in ``conf/base/catalog_interpretation.yml`` as::

    "interpretation_input_{name}":
      type: icb_kedro.interpretation.optional_dataset.OptionalDataset
      dataset:
        type: pandas.ParquetDataset
        filepath: data/07_model_output/{name}.parquet
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError


class OptionalDataset(AbstractDataset[Any, Any]):
    """Load the wrapped dataset if it exists, else ``None``.

    Read-only by default (a mirror of another pipeline's output). ``writable: true`` makes
    the dataset itself optional: its producer saves through it, and a pipeline that reads
    it under its real name (so Kedro orders reader after producer in any combination of
    ``--pipelines``) gets ``None`` when the producer was never run. The model pipelines'
    ``predictions_<model>`` tables are declared this way for the evaluation pipeline.
    """

    def __init__(self, dataset: dict[str, Any] | str, writable: bool = False, metadata: dict[str, Any] | None = None) -> None:
        config = {"type": dataset} if isinstance(dataset, str) else deepcopy(dataset)
        if "type" not in config:
            raise DatasetError(f"OptionalDataset needs a wrapped dataset with a 'type', got {dataset!r}")
        self._dataset = AbstractDataset.from_config("optional", config)
        self._writable = bool(writable)
        self.metadata = metadata

    def load(self) -> Any:
        if not self._dataset.exists():
            return None
        return self._dataset.load()

    def save(self, data: Any) -> None:
        if not self._writable:
            raise DatasetError("OptionalDataset is read-only: it mirrors another pipeline's output")
        self._dataset.save(data)

    def _exists(self) -> bool:
        # A mirror: "nothing there" is a valid value (None). A writable (real) dataset says
        # whether its producer has written it, as any dataset does.
        return self._dataset.exists() if self._writable else True

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}
