"""File datasets that write atomically: to a temporary sibling, then ``os.replace``.

A run killed mid-write (``kill -9``, out of memory, a CI time-out) must never leave a
half-written parquet behind for the next run or another pipeline to read: with an in-place
write it did (``expression_combat.parquet``). Each class here is the kedro-datasets class of
the same name with one change: on a local filesystem ``save`` writes
``.<name>.partial-<pid>`` next to the target and renames it over the target only once the
write succeeded (a rename within one directory is atomic on POSIX). A crash leaves at worst
a ``.partial`` file, which no dataset reads (partitioned datasets filter by suffix) and the
next successful save of the same target removes.

The catalog uses them as ``type: icb_kedro.datasets.ParquetDataset`` etc.; wrapped by
``kedro_mlflow``'s ``MlflowArtifactDataset`` they are logged from the final path.
Saving several figures at once (a dict or list into a folder) is written in place.

``OptionalDataset`` wraps any of them and loads ``None`` when the wrapped data does not
exist. With ``writable: true`` the producer saves through it and the evaluation and
interpretation pipelines read it under its real name: ``None`` when that pipeline was never
run (the report then says "not run"), and Kedro orders reader after producer in any
combination of ``--pipelines``.
"""

from __future__ import annotations

import os
from copy import deepcopy
from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError
from kedro_datasets.matplotlib import MatplotlibDataset as _MatplotlibDataset
from kedro_datasets.pandas import CSVDataset as _CSVDataset
from kedro_datasets.pandas import ParquetDataset as _ParquetDataset
from kedro_datasets.pickle import PickleDataset as _PickleDataset
from kedro_datasets.pillow import ImageDataset as _ImageDataset
from kedro_datasets.text import TextDataset as _TextDataset

PARTIAL = ".partial-"


def partial_path(target: Path | str) -> Path:
    """The temporary sibling a save writes first (hidden, never matched by a suffix filter)."""
    target = Path(target)
    return target.with_name(f".{target.name}{PARTIAL}{os.getpid()}")


def _atomic(base: type, name: str | None = None) -> type:
    write = getattr(base.save, "__wrapped__", base.save)  # the undecorated save of kedro-datasets

    def save(self, data: Any) -> None:
        if getattr(self, "_protocol", "file") not in ("file", "") or isinstance(data, (dict, list)):
            write(self, data)
            return
        final = self._filepath
        temporary = partial_path(str(final))
        self._filepath, self._filepath_final = type(final)(temporary.as_posix()), final
        try:
            write(self, data)
            os.replace(temporary, str(final))
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        finally:
            self._filepath, self._filepath_final = final, None
        for stale in Path(str(final)).parent.glob(
            f".{Path(str(final)).name}{PARTIAL}*"
        ):  # earlier crashes
            stale.unlink(missing_ok=True)

    save.__doc__ = (
        f"{base.__name__}.save, written to a temporary sibling and renamed over the target."
    )
    name = name or base.__name__
    return type(
        name,
        (base,),
        {"save": save, "__module__": __name__, "__qualname__": name, "__doc__": base.__doc__},
    )


ParquetDataset = _atomic(_ParquetDataset)
CSVDataset = _atomic(_CSVDataset)
PickleDataset = _atomic(_PickleDataset)
MatplotlibDataset = _atomic(_MatplotlibDataset)
TextDataset = _atomic(_TextDataset)


class _ImageFormatFromTarget(_ImageDataset):
    """PIL picks the image format from the file extension: take the target's, not the
    temporary sibling's (``.partial-<pid>`` has none)."""

    def _get_format(self, file_path):  # an instance method here; kedro-datasets' is static
        return _ImageDataset._get_format(type(file_path)(str(self._filepath_final or file_path)))

    _filepath_final = None


ImageDataset = _atomic(_ImageFormatFromTarget, "ImageDataset")


class OptionalDataset(AbstractDataset[Any, Any]):
    """Load the wrapped dataset if it exists, else ``None``.

    Read-only by default. ``writable: true`` makes the dataset itself optional: its
    producer saves through it, and a pipeline that reads it under its real name (so Kedro
    orders reader after producer in any combination of ``--pipelines``) gets ``None`` when
    the producer was never run. Every output that the evaluation and interpretation
    pipelines read from another pipeline is declared this way.
    """

    def __init__(
        self,
        dataset: dict[str, Any] | str,
        writable: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        config = {"type": dataset} if isinstance(dataset, str) else deepcopy(dataset)
        if "type" not in config:
            raise DatasetError(
                f"OptionalDataset needs a wrapped dataset with a 'type', got {dataset!r}"
            )
        self._dataset = AbstractDataset.from_config("optional", config)
        self._writable = bool(writable)
        self.metadata = metadata

    def load(self) -> Any:
        if not self._dataset.exists():
            return None
        return self._dataset.load()

    def save(self, data: Any) -> None:
        if not self._writable:
            raise DatasetError("OptionalDataset is read-only (declare it with writable: true)")
        self._dataset.save(data)

    def _exists(self) -> bool:
        # Read-only: "nothing there" is a valid value (None). A writable (real) dataset says
        # whether its producer has written it, as any dataset does.
        return self._dataset.exists() if self._writable else True

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._dataset._describe()}


__all__ = [
    "CSVDataset",
    "ImageDataset",
    "MatplotlibDataset",
    "OptionalDataset",
    "ParquetDataset",
    "PickleDataset",
    "TextDataset",
    "partial_path",
]
