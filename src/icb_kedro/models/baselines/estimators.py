"""Classical baseline classifiers: scikit-learn / XGBoost / imbalanced-learn pipelines.

What one baseline is: its :class:`ModelSpec` (family, fixed parameters, search grid, from
``parameters_baselines.yml`` by :func:`model_spec_from_params`), its unfitted classifier
(:func:`make_classifier`) and its pipeline (:func:`make_pipeline`):
``Pipeline(StandardScaler -> [SelectKBest] -> [SMOTE] -> classifier)`` (imblearn's
Pipeline, whose samplers resample during ``fit`` only, never at prediction time).
``SelectKBest`` (ANOVA F on the training rows) is optional: with 1,719 genes and ~330
training rows it cuts the cost of tree ensembles and of the searches several-fold. How
one fold is fitted (search, refit, calibration, threshold) is in
:mod:`icb_kedro.models.baselines.fold_fit`.

Model families (``MODEL_FAMILIES``): L2 logistic regression, SVM (AMU grid), random forest
and AdaBoost (AMU grids), XGBoost, an MLP, and the AMU paper's small 1-D CNN
(``icb_kedro.models.amu.estimators.AmuCnnClassifier``, Paddle, imported lazily).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from icb_kedro.models.baselines.parameters import ModelConfig

MODEL_FAMILIES: tuple[str, ...] = ("logreg", "svm", "rf", "adaboost", "xgboost", "mlp", "cnn")
SEARCH_KINDS: tuple[str, ...] = ("grid", "random", "none")
CLASSIFIER_STEP = "clf"


@dataclass(frozen=True)
class ModelSpec:
    """One baseline: its family, fixed parameters and hyper-parameter search."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)  # fixed classifier parameters
    search: str = "grid"
    grid: dict[str, list[Any]] = field(default_factory=dict)  # classifier parameter -> candidates
    n_iter: int = 10  # RandomizedSearchCV candidates
    protocols: tuple[str, ...] | None = None  # None = every protocol the pipeline runs

    def __post_init__(self) -> None:
        if self.family not in MODEL_FAMILIES:
            raise ValueError(
                f"model {self.name!r}: unknown family {self.family!r}; expected one of "
                f"{MODEL_FAMILIES}"
            )
        if self.search not in SEARCH_KINDS:
            raise ValueError(
                f"model {self.name!r}: unknown search {self.search!r}; expected one of "
                f"{SEARCH_KINDS}"
            )
        if self.search != "none" and not self.grid:
            raise ValueError(f"model {self.name!r}: search {self.search!r} needs a non-empty grid")
        if self.n_iter < 1:
            raise ValueError(f"model {self.name!r}: n_iter must be >= 1, got {self.n_iter}")


def expand_candidates(values: Any, where: str) -> list[Any]:
    """A grid entry: a list, or ``{start, stop, step}`` meaning ``range(start, stop, step)``
    (a mapping or the typed ``GridRange``).

    Lists given for tuple-valued parameters (e.g. MLP ``hidden_layer_sizes`` from YAML)
    are turned into tuples, as scikit-learn expects.
    """
    if isinstance(values, BaseModel):  # config.GridRange
        values = values.model_dump()
    if isinstance(values, Mapping):
        if set(values) != {"start", "stop", "step"}:
            raise ValueError(
                f"{where}: a range needs exactly start/stop/step, got {sorted(values)}"
            )
        candidates = list(range(int(values["start"]), int(values["stop"]), int(values["step"])))
    elif isinstance(values, (list, tuple)):
        candidates = [tuple(v) if isinstance(v, list) else v for v in values]
    else:
        raise ValueError(
            f"{where}: candidates must be a list or a start/stop/step range, got {values!r}"
        )
    if not candidates:
        raise ValueError(f"{where}: no candidate values")
    return candidates


def model_spec_from_params(name: str, params: Mapping[str, Any] | ModelConfig) -> ModelSpec:
    """Build a :class:`ModelSpec` from its ``parameters_baselines.yml`` entry
    (``params:baselines.models.<name>``: the typed ``ModelConfig`` or the plain mapping, as
    ``interpretation.explain_baselines`` passes it, parsed here)."""
    config = ModelConfig.of(params, f"params:baselines.models.{name}")
    grid = {
        key: expand_candidates(values, f"baselines.models.{name}.grid.{key}")
        for key, values in (config.grid or {}).items()
    }
    return ModelSpec(
        name=name,
        family=config.family or name,
        params=dict(config.params or {}),
        search=config.search or ("grid" if grid else "none"),
        grid=grid,
        n_iter=config.n_iter,
        protocols=config.protocols,
    )


def make_classifier(family: str, params: Mapping[str, Any], seed: int) -> Any:
    """An unfitted classifier of ``family`` with ``params``; seeded where it draws random
    numbers."""
    params = dict(params)
    if family == "logreg":
        from sklearn.linear_model import LogisticRegression

        # L2 is scikit-learn's default penalty; C is searched.
        return LogisticRegression(**{"max_iter": 5000, **params})
    if family == "svm":
        from sklearn.svm import SVC

        # Searched on the decision function (AUROC needs no probabilities); the refit is
        # wrapped in CalibratedClassifierCV for Platt-scaled probabilities (fit_predict_fold).
        return SVC(**{"random_state": seed, **params})
    if family == "rf":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(**{"random_state": seed, "n_jobs": 1, **params})
    if family == "adaboost":
        from sklearn.ensemble import AdaBoostClassifier
        from sklearn.tree import DecisionTreeClassifier

        # AMU: AdaBoost of depth-limited trees; the depth is searched as estimator__max_depth.
        tree_params = {
            k.removeprefix("estimator__"): v
            for k, v in params.items()
            if k.startswith("estimator__")
        }
        boost_params = {k: v for k, v in params.items() if not k.startswith("estimator__")}
        tree = DecisionTreeClassifier(**{"max_depth": 4, "random_state": seed, **tree_params})
        return AdaBoostClassifier(tree, **{"random_state": seed, **boost_params})
    if family == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            **{
                "random_state": seed,
                "n_jobs": 1,
                "tree_method": "hist",
                "eval_metric": "logloss",
                **params,
            }
        )
    if family == "mlp":
        from sklearn.neural_network import MLPClassifier

        return MLPClassifier(**{"random_state": seed, **params})
    if family == "cnn":
        try:
            from icb_kedro.models.amu.estimators import AmuCnnClassifier
        except ImportError as error:  # written by the AMU work; optional here
            raise ValueError(
                "model family 'cnn' needs icb_kedro.models.amu.estimators.AmuCnnClassifier, which "
                f"cannot be imported ({error}); disable it in parameters_baselines.yml "
                "(baselines.models.cnn.enabled: false)"
            ) from None
        return AmuCnnClassifier(**{"seed": seed, **params})
    raise ValueError(f"unknown model family {family!r}; expected one of {MODEL_FAMILIES}")


def make_pipeline(
    spec: ModelSpec,
    seed: int,
    smote: bool = False,
    smote_k_neighbors: int = 5,
    n_features: int | None = None,
    impute: bool = False,
) -> Any:
    """``[SimpleImputer] -> StandardScaler -> [SelectKBest] -> [SMOTE] -> classifier``: one imblearn
    Pipeline.

    Every step is fitted on the rows the pipeline is fitted on (training rows only).
    ``n_features``: keep the k genes with the largest ANOVA F (None = all genes).
    ``impute``: genes a cohort does not measure (NaN) take the training rows' mean (a gene
    no training row measures: 0, i.e. the standardized mean); the baselines' missing-gene
    policy when their panel is not the intersection.
    """
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import Pipeline
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    steps: list[tuple[str, Any]] = (
        [("impute", SimpleImputer(strategy="mean", keep_empty_features=True))] if impute else []
    )
    steps.append(("scale", StandardScaler()))
    if n_features is not None:
        if int(n_features) < 1:
            raise ValueError(f"n_features must be None or >= 1, got {n_features}")
        steps.append(("select", SelectKBest(f_classif, k=int(n_features))))
    if smote:
        steps.append(("smote", SMOTE(k_neighbors=smote_k_neighbors, random_state=seed)))
    steps.append((CLASSIFIER_STEP, make_classifier(spec.family, spec.params, seed)))
    return Pipeline(steps)


def log_ratio_features(ratios: np.ndarray, pseudo_count: float | None = None) -> np.ndarray:
    """ln(ratio + pseudo_count) of AMU constituent ratios: the AMU pipeline's own encoding.

    Delegates to ``icb_kedro.models.amu.features.log_constituent_ratios`` (numpy only) so
    AMU and its competitors see identical features (spec item 3).
    """
    from icb_kedro.models.amu.features import PSEUDO_COUNT, log_constituent_ratios

    return log_constituent_ratios(ratios, PSEUDO_COUNT if pseudo_count is None else pseudo_count)
