"""Typed parameters: each pipeline's ``params:<name>`` block as a frozen pydantic model.

A node receives the block as Kedro gives it (a plain dict) and parses it at its boundary with
``<Config>.of(params, "params:<name>")``: unknown keys are refused (a typo such as
``n_split`` fails the run instead of silently falling back to a default), values are
checked against their types (pydantic's lax mode: ``"4"`` or ``4.0`` become ``4``) and
choices, and the defaults live in one place, the model. ``hooks.ParametersCheckHook``
parses every typed block a run reads when it starts, so a bad value fails before hours of
computation, not in the node that first reads it.

Why not Kedro 1.7's own typed parameters (annotating a node argument with the model)?
Kedro then replaces the dict in ``context.params`` by the model instance, which
kedro-mlflow logs and the grid hashes as plain parameters, and nested ``params:a.b``
inputs of other nodes disappear. Parsing at the boundary keeps parameters plain
everywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self, get_args

from pydantic import BaseModel, ConfigDict, ValidationError


class Config(BaseModel):
    """Base of the typed parameter blocks: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def of(cls, params: Mapping[str, Any] | Self | None, where: str) -> Self:
        """``params`` parsed into this model; ``where`` names the block in errors."""
        if isinstance(params, cls):
            return params
        try:
            return cls.model_validate(dict(params or {}))
        except ValidationError as error:
            raise ValueError(f"{where}: {_explain(cls, error)}") from None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds: ``M``, ``M | None`` or the values of ``dict[str, M]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _fields_at(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    """The keys a nested model accepts at ``path`` (for "unknown key" messages); a path step
    that is a mapping key (``panels.<name>``) or a union branch is stepped over."""
    for key in path:
        field = model.model_fields.get(str(key))
        if field is None:
            continue  # a dict key or pydantic's union-branch label
        inner = _model_in(field.annotation)
        if inner is None:
            return []
        model = inner
    return sorted(model.model_fields)


def _explain(model: type[BaseModel], error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"]) or "(block)"
        if item["type"] == "extra_forbidden":
            known = ", ".join(_fields_at(model, item["loc"][:-1]))
            problems.append(f"unknown key '{location}' (known here: {known})")
        else:
            problems.append(f"'{location}': {item['msg']} (got {item.get('input')!r})")
    return "; ".join(problems)
