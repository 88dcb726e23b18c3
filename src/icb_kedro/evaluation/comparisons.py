"""Paired AUROC comparisons of models, per cohort and combined across cohorts.

:func:`paired_comparisons`: per cohort, AUROC difference of two models on the samples both
scored in the same trials (a trial is a repeat: the pooled out-of-fold predictions of its
splits), DeLong test (extended to overlapping trial splits) and paired bootstrap CI; plus a
row per pair combining cohorts (``cohort == ALL_COHORTS``; random effects,
DerSimonian-Laird, with tau² and I², :func:`combine_differences_random_effects`) with
Benjamini-Hochberg q-values. Public names are re-exported by
:mod:`~icb_kedro.evaluation.summary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import norm

from icb_kedro.evaluation.bootstrap import paired_bootstrap_auroc_difference
from icb_kedro.evaluation.combination import bh_adjust, combine_cohort_differences
from icb_kedro.evaluation.delong import delong_test_over_trials
from icb_kedro.evaluation.predictions import cohort_rng, validate_predictions
from icb_kedro.schema import SAMPLE_KEY

ALL_COHORTS = "ALL"

COMPARISON_COLUMNS: tuple[str, ...] = (
    "protocol",
    "model_a",
    "model_b",
    "cohort",
    "n_cohorts",
    "n_repeats",
    "n_samples",
    "auroc_a",
    "auroc_b",
    "diff",
    "se",
    "z",
    "p",
    "ci_low",
    "ci_high",
    "tau2",
    "i2",
    "q",
    "significant",
)


def _model_pairs(
    models: list[str], reference_model: str | Sequence[str] | None
) -> list[tuple[str, str]]:
    """(model_a, model_b) pairs: all pairs, or every model against each reference, each
    unordered pair once (a pair of two references is kept the first way it comes)."""
    if reference_model is None:
        return list(combinations(models, 2))
    references = [reference_model] if isinstance(reference_model, str) else list(reference_model)
    unknown = [r for r in references if r not in models]
    if unknown:
        raise ValueError(f"reference model(s) {unknown} have no predictions; models are {models}")
    pairs, seen = [], set()
    for reference in references:
        for model in models:
            if model != reference and frozenset((model, reference)) not in seen:
                seen.add(frozenset((model, reference)))
                pairs.append((model, reference))
    return pairs


def _compare_in_cohort(y, score_a, score_b, trials, keys, n_boot, rng, level, resample) -> dict:
    row = {"n_cohorts": 1, "n_repeats": 0, "n_samples": len(np.unique(keys))}
    try:
        delong = delong_test_over_trials(y, score_a, score_b, trials, keys)
    except ValueError:  # no trial with both classes: nothing to compare, reported as NaN
        return {
            **row,
            **{
                c: np.nan
                for c in ("auroc_a", "auroc_b", "diff", "se", "z", "p", "ci_low", "ci_high")
            },
        }
    boot = paired_bootstrap_auroc_difference(
        y, score_a, score_b, trials, keys, n_boot, rng, level, resample
    )
    return {
        **row,
        "n_repeats": delong.n_trials,
        "auroc_a": delong.auroc_a,
        "auroc_b": delong.auroc_b,
        "diff": delong.diff,
        "se": delong.se,
        "z": delong.z,
        "p": delong.p,
        "ci_low": boot.ci_low,
        "ci_high": boot.ci_high,
    }


def combine_differences_random_effects(diffs, ses, level: float = 0.95) -> dict[str, float]:
    """Random-effects (DerSimonian-Laird) combination of per-cohort paired AUROC differences,
    the same model as the AUROC meta-analysis (``meta_analysis.random_effects``): cohorts may
    differ in how much better one model is, so the pooled difference is weighted by
    1 / (its variance + tau²) and its SE includes tau². With tau² = 0 (or one usable cohort)
    it is the fixed-effect inverse-variance result (= weighted Stouffer,
    ``statistics.combine_cohort_differences``), which also keeps that function's handling of
    cohorts without a variance (left out; identical rankings everywhere: diff 0, p 1).
    """
    from icb_kedro.evaluation.meta_analysis import random_effects

    d, s = np.asarray(diffs, float), np.asarray(ses, float)
    usable = np.isfinite(d) & np.isfinite(s) & (s > 0)
    z_level = float(norm.ppf(0.5 + level / 2))
    if usable.sum() < 2:
        fixed = combine_cohort_differences(d, s)
        return {
            "diff": fixed.diff,
            "se": fixed.se,
            "z": fixed.z,
            "p": fixed.p,
            "n_cohorts": fixed.n_cohorts,
            "ci_low": fixed.diff - z_level * fixed.se,
            "ci_high": fixed.diff + z_level * fixed.se,
            "tau2": 0.0 if fixed.n_cohorts else np.nan,
            "i2": np.nan,
        }
    pooled = random_effects(d[usable], s[usable] ** 2, "dl", level)
    z = pooled["pooled"] / pooled["se"]
    return {
        "diff": pooled["pooled"],
        "se": pooled["se"],
        "z": z,
        "p": float(2.0 * norm.sf(abs(z))),
        "n_cohorts": int(usable.sum()),
        "ci_low": pooled["ci_low"],
        "ci_high": pooled["ci_high"],
        "tau2": pooled["tau2"],
        "i2": pooled["i2"],
    }


def paired_comparisons(
    predictions: pd.DataFrame,
    reference_model: str | Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "patient",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paired AUROC comparisons of models, per cohort and combined (``cohort == "ALL"``).

    Pairs: every model against ``reference_model`` (``model_a`` = the model, ``model_b`` =
    the reference; a list = against each reference, every unordered pair once) or, if None,
    all pairs (``model_a`` < ``model_b``). Only samples scored by both models in the same
    (protocol, cohort, repeat) are paired.

    Per cohort: ``auroc_a``/``auroc_b`` = mean over repeats on the paired samples; ``diff`` =
    their difference; ``se``, ``z``, ``p`` from the DeLong test of the mean-over-trials
    difference (:func:`~icb_kedro.evaluation.statistics.delong_test_over_trials`: per-patient
    structural components summed over trials, so overlapping test splits are not counted
    as independent evidence; one trial = plain DeLong); ``ci_low``/``ci_high`` = paired
    patient bootstrap percentile CI of ``diff``.

    ``ALL`` rows: ``diff``/``se``/``z``/``p``/CI = random-effects (DerSimonian-Laird)
    combination of the cohorts' differences with its ``tau2`` and ``i2``
    (:func:`combine_differences_random_effects`; tau² = 0 gives the fixed-effect weighted
    Stouffer result); per-cohort rows have NaN ``tau2``/``i2``;
    ``auroc_a``/``auroc_b`` = unweighted means over the cohorts (their difference need not
    equal the weighted ``diff``). ``q`` = Benjamini-Hochberg within each family, i.e. per
    protocol separately for the per-cohort rows and for the ``ALL`` rows;
    ``significant`` = q < ``alpha``.
    """
    table = validate_predictions(predictions)
    models = sorted(table["model"].unique())
    pairs = _model_pairs(models, reference_model)
    rows = []
    for protocol, rows_of_protocol in table.groupby("protocol", sort=True):
        index_columns = ["cohort", "repeat", SAMPLE_KEY]
        wide = rows_of_protocol.pivot(index=index_columns, columns="model", values="y_prob")
        labels = (
            rows_of_protocol.groupby(index_columns)["y_true"]
            .agg(["min", "max"])
            .reindex(wide.index)
        )
        if (labels["min"] != labels["max"]).any():
            bad = labels.index[labels["min"] != labels["max"]][0]
            raise ValueError(f"models disagree on y_true of {bad} in protocol {protocol!r}")
        y_all = labels["min"].to_numpy()
        cohort_of_row = wide.index.get_level_values("cohort").to_numpy()
        trial_of_row = wide.index.get_level_values("repeat").to_numpy()
        key_of_row = wide.index.get_level_values(SAMPLE_KEY).to_numpy()
        cohorts = sorted(set(cohort_of_row))
        for model_a, model_b in pairs:
            if model_a not in wide.columns or model_b not in wide.columns:
                continue
            score_a, score_b = wide[model_a].to_numpy(), wide[model_b].to_numpy()
            paired = np.isfinite(score_a) & np.isfinite(score_b)
            per_cohort = []
            for cohort in cohorts:
                rows_ = np.flatnonzero(paired & (cohort_of_row == cohort))
                if len(rows_) == 0:
                    continue
                result = _compare_in_cohort(
                    y_all[rows_],
                    score_a[rows_],
                    score_b[rows_],
                    trial_of_row[rows_],
                    key_of_row[rows_],
                    n_boot,
                    cohort_rng(seed, cohort),
                    level,
                    resample,
                )
                per_cohort.append(
                    {
                        "protocol": protocol,
                        "model_a": model_a,
                        "model_b": model_b,
                        "cohort": cohort,
                        **result,
                    }
                )
            if not per_cohort:
                continue
            rows.extend(per_cohort)
            cohort_rows = pd.DataFrame(per_cohort)
            combined = combine_differences_random_effects(
                cohort_rows["diff"], cohort_rows["se"], level
            )
            rows.append(
                {
                    "protocol": protocol,
                    "model_a": model_a,
                    "model_b": model_b,
                    "cohort": ALL_COHORTS,
                    "n_repeats": int(cohort_rows["n_repeats"].sum()),
                    "n_samples": int(cohort_rows["n_samples"].sum()),
                    "auroc_a": cohort_rows["auroc_a"].mean(),
                    "auroc_b": cohort_rows["auroc_b"].mean(),
                    **combined,
                }
            )
    result = pd.DataFrame(
        rows, columns=[c for c in COMPARISON_COLUMNS if c not in ("q", "significant")]
    )
    result["q"] = np.nan
    if not result.empty:
        family = [result["protocol"], result["cohort"] == ALL_COHORTS]
        result["q"] = result.groupby(family)["p"].transform(
            lambda p: pd.Series(bh_adjust(p.to_numpy()), index=p.index)
        )
    result["significant"] = (result["q"] < alpha).astype(bool)
    return result[list(COMPARISON_COLUMNS)].astype(
        {"n_cohorts": "int64", "n_repeats": "int64", "n_samples": "int64"}
    )
