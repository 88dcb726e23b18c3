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


class OptionalDataset(AbstractDataset[None, Any]):
    """Load the wrapped dataset if it exists, else ``None``; saving is refused."""

    def __init__(self, dataset: dict[str, Any] | str, metadata: dict[str, Any] | None = None) -> None:
        config = {"type": dataset} if isinstance(dataset, str) else deepcopy(dataset)
        if "type" not in config:
            raise DatasetError(f"OptionalDataset needs a wrapped dataset with a 'type', got {dataset!r}")
        self._dataset = AbstractDataset.from_config("optional", config)
        self.metadata = metadata

    def load(self) -> Any:
        if not self._dataset.exists():
            return None
        return self._dataset.load()

    def save(self, data: None) -> None:
        raise DatasetError("OptionalDataset is read-only: it mirrors another pipeline's output")

    def _exists(self) -> bool:
        return True  # "nothing there" is a valid value (None) for an optional input

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}
