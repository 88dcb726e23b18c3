"""Kedro wiring shared by the pipelines: bind a node's fixed arguments, name a fold
namespace's inputs, read a fold table through the run's cell selection. Pipelines share
Kedro helpers only through here (no pipeline imports another pipeline's modules)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from icb_kedro.evaluation.protocols import FoldCells, select_cells
from icb_kedro.paths import namespace_for

# The shipped models' predictions (``predictions_<model>``), in the evaluation's row order;
# the default of the evaluation and interpretation pipelines built on their own. The
# registry passes every scored model instead (``pipeline_registry.scored_models``).
MODEL_PIPELINES: tuple[str, ...] = ("baselines", "ic2bert", "amu")

# The node input that carries the cell selection (``on_fold_cells``).
CELLS = "params:folds.cells"


def fold_table(cohort: str) -> str:
    """The folds pipeline's per-held-out-cohort fold table (output of ``<ns>.make_lodocv_folds``).

    Fold namespaces read this table rather than the combined ``lodocv_folds``: a path
    ``fold_X.make_lodocv_folds -> combine_lodocv_folds -> fold_X.*`` would leave and re-enter
    the namespace, which Kedro flags as an invalid (interrupted) namespace.
    """
    return f"lodocv_folds_{namespace_for(cohort)}"


def fold_inputs(cohort: str, *shared: str) -> dict[str, str]:
    """Namespace input mapping: the fold table under the template name ``folds`` + shared inputs."""
    return {"folds": fold_table(cohort), **{name: name for name in shared}}


def bind(func: Callable, **bound: Any) -> Callable:
    """``func`` with some keyword arguments fixed (e.g. the held-out cohort of a namespace).

    Unlike ``functools.partial`` the result is a function with the remaining signature and
    type hints, so Kedro's node validation and parameter type checks see the real ones.
    """

    @functools.wraps(func)
    def bound_func(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **bound, **kwargs)

    signature = inspect.signature(func)
    bound_func.__signature__ = signature.replace(
        parameters=[p for n, p in signature.parameters.items() if n not in bound]
    )
    bound_func.__annotations__ = {k: v for k, v in func.__annotations__.items() if k not in bound}
    return bound_func


def on_fold_cells(func: Callable, folds: str = "folds") -> Callable:
    """``func`` reading its fold-table argument ``folds`` through ``params:folds.cells``.

    The result takes one more keyword argument, ``cells`` (wire it to ``CELLS`` in a node whose
    inputs are a mapping), and passes ``func``
    only the rows of the selected (held-out cohort, trial) cells, so ``kedro run --params
    folds.cells.trials=3`` scores one trial with no node of its own knowing about cells.
    """
    signature = inspect.signature(func)
    if folds not in signature.parameters:
        raise TypeError(f"{func.__name__} has no argument {folds!r} to select cells of")

    @functools.wraps(func)
    def selected(*args: Any, **kwargs: Any) -> Any:
        cells = FoldCells.of(kwargs.pop("cells", None), CELLS)
        arguments = signature.bind(*args, **kwargs).arguments
        arguments[folds] = select_cells(
            arguments[folds], cells.held_out, cells.trials, name=f"{func.__name__}: {folds}"
        )
        return func(**arguments)

    cells = inspect.Parameter("cells", inspect.Parameter.KEYWORD_ONLY)
    selected.__signature__ = signature.replace(parameters=[*signature.parameters.values(), cells])
    return selected
