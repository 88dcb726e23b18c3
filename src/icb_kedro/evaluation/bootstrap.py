"""Stratified, patient-level bootstrap of AUROC (one trial or the mean over several trials).

Test sets here are small (a 20% split of Riaz holds 1 responder and 2 non-responders),
so every interval is computed at the level of patients, never of folds.

Bootstrap (:func:`bootstrap_auroc_replicates`). Replicates are *stratified*: responders
and non-responders are resampled separately with replacement, so every replicate keeps
the observed class counts and its AUROC is defined. It is vectorised as a weighted
Mann-Whitney statistic: with multinomial counts ``w`` per patient and the kernel
``psi[i, j] = 1{s_i > s_j} + 1/2 1{s_i = s_j}`` over responder i and non-responder j,
``AUROC* = sum_ij w_i psi_ij w_j / (sum_i w_i sum_j w_j)``, i.e. two small matrix
products per trial for all replicates at once.

Several trials of one cohort (the ``transfer``/``within`` protocols) are summarised by the
mean AUROC over trials. Two resampling schemes are offered:

- ``resample="trial"``: resample patients within each trial's test set independently and
  average across trials (the scheme described in the evaluation brief).
- ``resample="patient"`` (default): draw the cohort's patients once per replicate and give
  each patient the same weight in every trial whose test set contains it. The 20% test
  splits of 10 trials overlap (each patient is tested ~2 times), so treating trials as
  independent under-states the variance of their mean (about 1.4x too narrow for 10
  trials of 20%, see the tests); the shared draw is the clustered (patient-as-cluster)
  bootstrap. Trials that lose a class in a replicate are skipped for that replicate. For
  one trial, both schemes are the same stratified patient bootstrap.

Also here: percentile intervals, the paired bootstrap of an AUROC difference and the CI of
an unweighted mean over cohorts. Public names are re-exported by
:mod:`~icb_kedro.evaluation.statistics`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from icb_kedro.evaluation.metrics import as_binary_labels

RESAMPLE_SCHEMES: tuple[str, ...] = ("patient", "trial")
SeedLike = int | np.random.Generator


class BootstrapCI(NamedTuple):
    """Point estimate and percentile bootstrap interval."""

    estimate: float
    ci_low: float
    ci_high: float


class PairedBootstrapResult(NamedTuple):
    """AUROC difference (a - b), its percentile interval and a two-sided bootstrap p-value."""

    diff: float
    ci_low: float
    ci_high: float
    p: float


# ----------------------------------------------------------------------------- helpers


def _rng(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def scores_2d(scores: Sequence | np.ndarray, n: int) -> np.ndarray:
    array = np.atleast_2d(np.asarray(scores, dtype=float))
    if array.ndim != 2 or array.shape[1] != n:
        raise ValueError(
            f"scores must have shape (n,) or (k, n) with n = {n} labels, got {np.shape(scores)}"
        )
    if not np.isfinite(array).all():
        raise ValueError("scores contain NaN or infinite values")
    return array


def percentile_ci(replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates along axis 0 (NaN replicates ignored)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    values = np.asarray(replicates, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


class _Trial(NamedTuple):
    pos: np.ndarray  # indices into the cohort's responders
    neg: np.ndarray  # indices into the cohort's non-responders
    psi: np.ndarray  # (k, len(pos), len(neg)) Mann-Whitney kernel per score set


class _Design(NamedTuple):
    trials: list[_Trial]
    n_pos: int  # distinct responders over all trials
    n_neg: int


def _design(y_true, scores, trials, patient_keys) -> _Design:
    """Index every trial's responders/non-responders into the cohort's patients; build kernels."""
    labels = as_binary_labels(y_true)
    n = len(labels)
    score = scores_2d(scores, n)
    trial_ids = np.zeros(n, dtype=int) if trials is None else np.asarray(trials)
    keys = np.arange(n) if patient_keys is None else np.asarray(patient_keys)
    if len(trial_ids) != n or len(keys) != n:
        raise ValueError(
            f"y_true, trials and patient_keys must have the same length ({n}, {len(trial_ids)}, "
            f"{len(keys)})"
        )
    patient_codes, patient_of_row = np.unique(keys, return_inverse=True)
    label_of_patient = np.full(len(patient_codes), -1, dtype=np.int8)
    label_of_patient[patient_of_row] = labels
    if np.any(label_of_patient[patient_of_row] != labels):
        raise ValueError(
            "a patient has different labels in different rows (y_true must be a patient property)"
        )
    # Position of each patient within its class, so weights can be drawn per class.
    class_index = np.empty(len(patient_codes), dtype=int)
    for cls in (0, 1):
        members = np.flatnonzero(label_of_patient == cls)
        class_index[members] = np.arange(len(members))
    built = []
    for trial in np.unique(trial_ids):
        rows = np.flatnonzero(trial_ids == trial)
        patients = patient_of_row[rows]
        if len(np.unique(patients)) != len(patients):
            raise ValueError(f"trial {trial!r} scores the same patient more than once")
        is_pos = labels[rows] == 1
        if is_pos.all() or not is_pos.any():
            continue  # AUROC undefined on this trial: skipped (reported via n_trials)
        pos_scores = score[:, rows[is_pos]][:, :, None]
        neg_scores = score[:, rows[~is_pos]][:, None, :]
        psi = (pos_scores > neg_scores) + 0.5 * (pos_scores == neg_scores)
        built.append(_Trial(class_index[patients[is_pos]], class_index[patients[~is_pos]], psi))
    return _Design(built, int((label_of_patient == 1).sum()), int((label_of_patient == 0).sum()))


def _multinomial_weights(n_items: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n_items) counts of a with-replacement resample of n_items items.

    Drawn as indices and counted with one ``bincount`` (10x faster than ``rng.multinomial``
    with ``size=n_boot``, which loops in Python-level C calls per replicate).
    """
    draws = rng.integers(0, n_items, size=(n_boot, n_items))
    offsets = (np.arange(n_boot) * n_items)[:, None]
    return (
        np.bincount((draws + offsets).ravel(), minlength=n_boot * n_items)
        .reshape(n_boot, n_items)
        .astype(float)
    )


def _weighted_trial_aurocs(
    design: _Design, n_boot: int, rng: np.random.Generator, resample: str
) -> np.ndarray:
    """(n_trials, n_boot, k) AUROC of every trial under every bootstrap replicate (NaN if a class
    vanished)."""
    if resample not in RESAMPLE_SCHEMES:
        raise ValueError(
            f"unknown resample scheme {resample!r}; expected one of {RESAMPLE_SCHEMES}"
        )
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if resample == "patient":
        w_pos_all = _multinomial_weights(design.n_pos, n_boot, rng)
        w_neg_all = _multinomial_weights(design.n_neg, n_boot, rng)
    out = []
    for trial in design.trials:
        if resample == "patient":
            w_pos, w_neg = w_pos_all[:, trial.pos], w_neg_all[:, trial.neg]
        else:
            w_pos = _multinomial_weights(len(trial.pos), n_boot, rng)
            w_neg = _multinomial_weights(len(trial.neg), n_boot, rng)
        # sum_ij w_i psi_ij w_j for every replicate b and score set k (BLAS matmul, then a row-wise
        # dot)
        numerator = np.stack([np.sum((w_pos @ psi) * w_neg, axis=1) for psi in trial.psi], axis=1)
        denominator = (w_pos.sum(axis=1) * w_neg.sum(axis=1))[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(denominator > 0, numerator / denominator, np.nan))
    return np.stack(out)


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are expected and stay NaN
        return np.nanmean(values, axis=axis)


def _trial_mean_auroc(design: _Design) -> np.ndarray:
    """(k,) mean over trials of the observed AUROC of each score set."""
    return np.mean([trial.psi.mean(axis=(1, 2)) for trial in design.trials], axis=0)


# ----------------------------------------------------------------------------- bootstrap


def bootstrap_auroc_replicates(
    y_true: Sequence | np.ndarray,
    y_score: Sequence | np.ndarray,
    trials: Sequence | np.ndarray | None = None,
    patient_keys: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: SeedLike = 0,
    resample: str = "patient",
) -> np.ndarray:
    """Bootstrap replicates of the mean-over-trials AUROC, shape (n_boot,) or (n_boot, k).

    ``y_score`` is one score vector (n,) or k score sets (k, n) on the same rows (then every
    set gets the same resample: paired). ``trials`` labels the trial of each row (None: one
    trial); ``patient_keys`` identifies patients across trials (None: every row is a
    patient). Trials with one class are skipped; a replicate is NaN if no trial is defined.
    """
    design = _design(y_true, y_score, trials, patient_keys)
    k = np.atleast_2d(np.asarray(y_score)).shape[0]
    if not design.trials:
        replicates = np.full((n_boot, k), np.nan)
    else:
        replicates = _nanmean(_weighted_trial_aurocs(design, n_boot, _rng(seed), resample), axis=0)
    return replicates[:, 0] if np.ndim(y_score) == 1 else replicates


def bootstrap_mean_auroc_ci(
    y_true: Sequence | np.ndarray,
    y_score: Sequence | np.ndarray,
    trials: Sequence | np.ndarray | None = None,
    patient_keys: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: SeedLike = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> BootstrapCI:
    """Mean AUROC over the trials of one cohort with its patient-level percentile bootstrap CI."""
    design = _design(y_true, y_score, trials, patient_keys)
    if not design.trials:
        return BootstrapCI(float("nan"), float("nan"), float("nan"))
    replicates = _nanmean(_weighted_trial_aurocs(design, n_boot, _rng(seed), resample), axis=0)[
        :, 0
    ]
    return BootstrapCI(float(_trial_mean_auroc(design)[0]), *percentile_ci(replicates, level))


def bootstrap_auroc_ci(
    y_true: Sequence | np.ndarray,
    y_score: Sequence | np.ndarray,
    n_boot: int = 1000,
    seed: SeedLike = 0,
    level: float = 0.95,
) -> BootstrapCI:
    """AUROC of one prediction set with a stratified patient bootstrap percentile CI."""
    return bootstrap_mean_auroc_ci(y_true, y_score, None, None, n_boot, seed, level)


def paired_bootstrap_auroc_difference(
    y_true: Sequence | np.ndarray,
    score_a: Sequence | np.ndarray,
    score_b: Sequence | np.ndarray,
    trials: Sequence | np.ndarray | None = None,
    patient_keys: Sequence | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: SeedLike = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> PairedBootstrapResult:
    """Mean-over-trials AUROC(a) - AUROC(b), both models resampled with the same patients.

    ``p`` is the two-sided bootstrap p-value 2 min(P*(d <= 0), P*(d >= 0)), capped at 1
    (coarse: resolution 2 / n_boot; DeLong gives the analytic test).
    """
    scores = np.vstack([np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)])
    design = _design(y_true, scores, trials, patient_keys)
    if not design.trials:
        return PairedBootstrapResult(float("nan"), float("nan"), float("nan"), float("nan"))
    aurocs = _weighted_trial_aurocs(design, n_boot, _rng(seed), resample)  # (t, b, 2)
    differences = _nanmean(aurocs[..., 0] - aurocs[..., 1], axis=0)
    observed = _trial_mean_auroc(design)
    finite = differences[np.isfinite(differences)]
    p = (
        min(1.0, 2.0 * min(np.mean(finite <= 0), np.mean(finite >= 0)))
        if finite.size
        else float("nan")
    )
    return PairedBootstrapResult(
        float(observed[0] - observed[1]), *percentile_ci(differences, level), float(p)
    )


def pooled_mean_ci(cohort_replicates: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """CI of the unweighted mean over cohorts from per-cohort replicates, shape (n_cohorts, n_boot).

    Replicate b averages the cohorts' b-th replicates: patients are resampled within each
    cohort and the set of cohorts stays fixed (the estimand is the mean over *these*
    cohorts). Replicates where a cohort is undefined are dropped.
    """
    values = np.atleast_2d(np.asarray(cohort_replicates, dtype=float))
    complete = np.isfinite(values).all(axis=0)
    return percentile_ci(values[:, complete].mean(axis=0), level)
