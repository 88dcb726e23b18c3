"""Readouts: how a (pretrained, frozen) IC2Bert encoder becomes a response score.

``ic2bert_finetune.readout`` chooses one; the same readout serves transfer, zero-shot and
the ensemble, and travels in the registered model (``ModelBundle.metadata['readout']``):

* ``pooled_head`` - the paper's: mean-pooled encoder output -> one-logit head, the whole
  model fine-tuned (linear probe first, smaller encoder rate; ``finetune_loop.finetune``).
* ``per_gene_expected_bin`` (default; a deliberate deviation from the paper) - each gene's
  expected bin under the MLM head, read on the unmasked input: [n, L] features, one per
  panel gene, then L2 logistic regression. Mean pooling averages 937 contextual gene
  vectors into one and loses the per-gene signal: measured on the 7-cohort folds, L2-LR on
  frozen pooled features scored 0.488 mean AUROC, on this per-gene readout 0.649 (better in
  10 of 10 trials).
* ``pooled_lr`` - L2 logistic regression on the frozen pooled vector (a diagnostic).
* ``tokens`` - no encoder: L2-LR on the token bins themselves (the ablation that tells
  whether the encoder adds anything over its own input).

``LinearReadout`` is fitted with scikit-learn on training rows only (imputation means,
scaling, the L2 strength C by stratified CV AUROC) and applied with numpy, so a registered
model needs no scikit-learn pickle. Missing genes ([MISSING], NaN features) take the
training rows' mean; a gene with no measured training row is dropped from the fit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

READOUTS = ("pooled_head", "per_gene_expected_bin", "pooled_lr", "tokens")
LINEAR_READOUTS = ("per_gene_expected_bin", "pooled_lr", "tokens")


def readout_features(
    kind: str,
    config,
    params,
    tokens: np.ndarray,
    batch_size: int = 8,
    context: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Features [n, k] of ``tokens`` for a linear readout (NaN = not measured); ``context``:
    see ``predict.expected_bin_features``."""
    from icb_kedro.models.ic2bert.predict import expected_bin_features, pooled_features

    if kind == "per_gene_expected_bin":
        return expected_bin_features(config, params, tokens, batch_size, context, seed)
    if kind == "pooled_lr":
        return pooled_features(config, params, tokens, batch_size).astype(np.float64)
    if kind == "tokens":
        values = np.asarray(tokens, np.float64)
        return np.where(values >= config.n_bins, np.nan, values)  # [MISSING] -> NaN
    raise ValueError(f"readout must be one of {LINEAR_READOUTS} here, got {kind!r}")


@dataclasses.dataclass(frozen=True)
class LinearReadout:
    """impute (training means) -> standardize (training mean/sd) -> logistic regression."""

    features: str  # which readout_features
    keep: np.ndarray  # bool [k]: features with at least one measured training row
    fill: np.ndarray  # [k_kept] training means (imputation)
    center: np.ndarray  # [k_kept]
    scale: np.ndarray  # [k_kept]
    coef: np.ndarray  # [k_kept]
    intercept: float
    C: float
    cv_auroc: float  # mean inner-CV AUROC of the chosen C (training rows only)
    context: int = (
        0  # how the features were read (predict.expected_bin_features); travels with the model
    )
    context_seed: int = 0
    batch_size: int = 8

    def decision(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)[:, self.keep]
        x = np.where(np.isnan(x), self.fill, x)
        return ((x - self.center) / self.scale) @ self.coef + self.intercept

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.decision(x)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features,
            "keep": self.keep.astype(bool).tolist(),
            "fill": self.fill.tolist(),
            "center": self.center.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
            "C": float(self.C),
            "cv_auroc": float(self.cv_auroc),
            "context": int(self.context),
            "context_seed": int(self.context_seed),
            "batch_size": int(self.batch_size),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LinearReadout:
        return cls(
            str(values["features"]),
            np.asarray(values["keep"], bool),
            *(np.asarray(values[k], np.float64) for k in ("fill", "center", "scale", "coef")),
            float(values["intercept"]),
            float(values["C"]),
            float(values["cv_auroc"]),
            int(values.get("context", 0)),
            int(values.get("context_seed", 0)),
            int(values.get("batch_size", 8)),
        )


def fit_linear_readout(
    features: np.ndarray,
    labels: np.ndarray,
    kind: str,
    Cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0),
    n_splits: int = 5,
    seed: int = 0,
    n_features: int | None = None,
) -> tuple[LinearReadout, np.ndarray]:
    """Fit on training rows only; returns the readout and its out-of-fold training
    probabilities (for a decision threshold that is not fitted on in-sample scores).

    C is chosen by stratified K-fold AUROC on these rows (folds capped by the minority
    class count); ties go to the stronger penalty (smaller C). ``n_features``: keep the k
    features with the largest ANOVA F (``anova_top``, as ``baselines.n_features``), chosen
    inside each CV fold on its training part and finally on all training rows; the choice
    travels in ``LinearReadout.keep``. None: every measured feature.
    """
    from threadpoolctl import threadpool_limits

    # One BLAS thread: these are GEMVs on a few hundred rows, and OpenBLAS on 2 threads turned
    # a 1,719-feature readout 5x slower here (54 vs 11 s per held-out cohort's transfer trials).
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_linear_readout(features, labels, kind, Cs, n_splits, seed, n_features)


def anova_top(x: np.ndarray, y: np.ndarray, k: int | None) -> np.ndarray:
    """Column indices (sorted) of the ``k`` largest ANOVA F of ``x`` (no NaN) against ``y``:
    scikit-learn's ``SelectKBest(f_classif)``, the baselines' selector (a constant column's
    undefined F ranks last; among exact ties the higher index wins). None or k >= the
    columns: all of them."""
    import warnings

    from sklearn.feature_selection import SelectKBest, f_classif

    if k is None or k >= x.shape[1]:
        return np.arange(x.shape[1])
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # A gene constant in these rows (or in one class) has F = NaN / inf: expected on
        # small folds, and SelectKBest ranks NaN last.
        warnings.filterwarnings("ignore", message="Features .* are constant", category=UserWarning)
        return SelectKBest(f_classif, k=int(k)).fit(x, y).get_support(indices=True)


def _fit_linear_readout(features, labels, kind, Cs, n_splits, seed, n_features):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, np.float64)
    y = np.asarray(labels, int)
    if len(np.unique(y)) < 2:
        raise ValueError(f"a readout needs both classes in its training rows, got {np.unique(y)}")
    keep = ~np.isnan(x).all(axis=0)
    x = x[:, keep]

    def model(c: float):
        return make_pipeline(
            SimpleImputer(strategy="mean"), StandardScaler(), LogisticRegression(C=c, max_iter=2000)
        )

    splits = int(min(n_splits, np.bincount(y).min()))
    best_c, best_auc, best_oof = Cs[0], -np.inf, None
    if splits >= 2:
        Cs = sorted(Cs)
        oofs = np.empty((len(Cs), len(y)))
        for train, test in StratifiedKFold(splits, shuffle=True, random_state=seed).split(x, y):
            # Imputation and scaling fitted once per fold (on its training part), then one
            # logistic regression walked along the C path, each fit warm-started from the
            # previous (stronger-penalty) optimum: the same convex optima, several times
            # fewer L-BFGS iterations than cold starts at weak penalties.
            prep = make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()).fit(x[train])
            x_train, x_test = prep.transform(x[train]), prep.transform(x[test])
            chosen = anova_top(x_train, y[train], n_features)  # this fold's training part only
            x_train, x_test = x_train[:, chosen], x_test[:, chosen]
            logistic = LogisticRegression(max_iter=2000, warm_start=True)
            for i, c in enumerate(Cs):
                oofs[i, test] = (
                    logistic.set_params(C=c).fit(x_train, y[train]).predict_proba(x_test)[:, 1]
                )
        for c, oof in zip(Cs, oofs, strict=True):
            auc = roc_auc_score(y, oof)
            if auc > best_auc + 1e-12:
                best_c, best_auc, best_oof = c, auc, oof
    chosen = anova_top(SimpleImputer(strategy="mean").fit_transform(x), y, n_features)
    measured = np.flatnonzero(keep)
    keep = np.zeros_like(keep)
    keep[measured[chosen]] = True
    x = x[:, chosen]
    fitted = model(best_c).fit(x, y)
    imputer, scaler, logistic = fitted.steps[0][1], fitted.steps[1][1], fitted.steps[2][1]
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    readout = LinearReadout(
        kind,
        keep,
        imputer.statistics_.astype(np.float64),
        scaler.mean_.astype(np.float64),
        scale.astype(np.float64),
        logistic.coef_[0].astype(np.float64),
        float(logistic.intercept_[0]),
        float(best_c),
        float(best_auc) if np.isfinite(best_auc) else float("nan"),
    )
    if best_oof is None:  # too few minority rows for CV: in-sample probabilities
        best_oof = readout.predict_proba(np.asarray(features, np.float64))
    return readout, best_oof
