"""The grid config's templates: ``{held_out}``/``{namespace}``/``{n_bins}``/``{trial}``
filled per cell, dotted runtime-parameter keys nested, mappings merged."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"^\{(\w+)\}$")


def fill_template(value: Any, context: Mapping[str, Any], where: str = "grid config") -> Any:
    """Fill ``{placeholder}`` strings recursively; an exact ``"{x}"`` keeps ``context[x]``'s
    type."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.match(value)
        try:
            if whole:
                return context[whole.group(1)]
            return value.format(**context)
        except KeyError as exc:
            raise ValueError(
                f"{where}: template {value!r} uses {exc}, not available here (available: "
                f"{sorted(context)})"
            ) from None
    if isinstance(value, Mapping):
        return {
            fill_template(k, context, where): fill_template(v, context, where)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [fill_template(v, context, where) for v in value]
    return value


def nest_dotted(params: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "c": {"d": 2}}`` -> ``{"a": {"b": 1}, "c": {"d": 2}}`` (Kedro runtime_params
    shape)."""
    nested: dict[str, Any] = {}
    for key, value in params.items():
        value = nest_dotted(value) if isinstance(value, Mapping) else value
        *parents, leaf = str(key).split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(
                    f"runtime param {key!r} conflicts with a non-mapping value at {part!r}"
                )
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            target[leaf] = _merge(target[leaf], value)
        else:
            target[leaf] = value
    return nested


def _merge(left: dict[str, Any], right: dict[str, Any]) -> dict[str, Any]:
    out = dict(left)
    for key, value in right.items():
        out[key] = (
            _merge(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out
