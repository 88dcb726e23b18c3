"""From a predictions table to the shared results tables and the report section.

``predictions`` (``schema.PREDICTION_COLUMNS``, one row per scored sample and repeat) is the
only input; every model pipeline produces it, so every model is summarised identically.
The unit of every metric is a *repeat*: the pooled out-of-fold predictions of the K splits
that score each patient of the cohort once (an 80/20 split on its own for the paper's
protocols). Where the functions below say "trial" they mean that unit.

- :func:`fold_metrics`: the tidy results table, one row per (model, protocol, cohort, repeat).
- :func:`cohort_summary`: per (model, protocol, cohort) mean and sd over repeats of every
  metric, and a patient-level bootstrap 95% CI of the mean-over-repeats AUROC.
- :func:`overall_summary`: per (model, protocol) unweighted mean over cohorts with a CI
  (patients resampled within cohorts, cohorts fixed).
- :func:`paired_comparisons`: per cohort, AUROC difference of two models on the samples both
  scored in the same trials, DeLong test (extended to overlapping trial splits) and paired
  bootstrap CI; plus a row per pair combining cohorts (random effects, DerSimonian-Laird,
  with tau² and I²) with Benjamini-Hochberg q-values.
- :func:`summary_markdown`: the readable report section.

Determinism: each bootstrap draws from a generator seeded by (``seed``, cohort), so a
cohort's resamples are the same for every model (common random numbers, which sharpens
comparisons) and do not change when models are added or removed.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import norm

from icb_kedro.evaluation.metrics import binary_metrics
from icb_kedro.evaluation.statistics import (
    bh_adjust,
    bootstrap_auroc_replicates,
    combine_cohort_differences,
    delong_test_over_trials,
    paired_bootstrap_auroc_difference,
    percentile_ci,
    pooled_mean_ci,
)
from icb_kedro.schema import FOLD_METRIC_COLUMNS, METRICS, PREDICTION_COLUMNS, PROTOCOLS, SAMPLE_KEY

FOLD_KEYS: tuple[str, ...] = ("model", "protocol", "cohort", "repeat")
COHORT_KEYS: tuple[str, ...] = ("model", "protocol", "cohort")
ALL_COHORTS = "ALL"

COHORT_SUMMARY_COLUMNS: tuple[str, ...] = (
    *COHORT_KEYS,
    "n_repeats",
    "n_patients",
    *(f"{metric}_{stat}" for metric in METRICS for stat in ("mean", "sd")),
    "ci_low",
    "ci_high",
)
OVERALL_SUMMARY_COLUMNS: tuple[str, ...] = (
    "model",
    "protocol",
    "n_cohorts",
    *(f"{metric}_mean" for metric in METRICS),
    "auroc_cohort_sd",
    "ci_low",
    "ci_high",
)
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


# ----------------------------------------------------------------------------- validation


def validate_predictions(predictions: pd.DataFrame) -> pd.DataFrame:
    """A checked copy of a predictions table (ValueError naming the problem and where)."""
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}; expected {list(PREDICTION_COLUMNS)}")
    table = predictions[list(PREDICTION_COLUMNS)].copy()
    if table.empty:
        raise ValueError("predictions table is empty")
    has_na = table.isna().any()
    if has_na.any():
        raise ValueError(
            f"predictions have missing values in columns {has_na[has_na].index.tolist()}"
        )
    unknown = sorted(set(table["protocol"]) - set(PROTOCOLS))
    if unknown:
        raise ValueError(
            f"predictions have unknown protocols {unknown}; expected some of {PROTOCOLS}"
        )
    labels = table["y_true"].astype(float)
    if not labels.isin((0.0, 1.0)).all():
        bad = table.loc[~labels.isin((0.0, 1.0))].iloc[0]
        raise ValueError(
            f"y_true must be 0/1; got {bad['y_true']!r} for {bad[SAMPLE_KEY]!r} ({bad['model']}, "
            f"{bad['protocol']})"
        )
    prob = table["y_prob"].astype(float)
    outside = ~np.isfinite(prob) | (prob < 0) | (prob > 1)
    if outside.any():
        bad = table.loc[outside].iloc[0]
        raise ValueError(
            f"y_prob must be a probability in [0, 1]; {int(outside.sum())} rows are not, "
            f"e.g. {bad['y_prob']!r} for {bad[SAMPLE_KEY]!r} ({bad['model']}, {bad['protocol']}, "
            f"repeat {bad['repeat']}, trial {bad['trial']})"
        )
    duplicated = table.duplicated([*FOLD_KEYS, SAMPLE_KEY])
    if duplicated.any():
        bad = table.loc[duplicated].iloc[0]
        raise ValueError(
            f"predictions score {bad[SAMPLE_KEY]!r} twice in one repeat ({bad['model']}, "
            f"{bad['protocol']}, {bad['cohort']}, repeat {bad['repeat']}); {int(duplicated.sum())} "
            "duplicated rows: a repeat's splits must test each patient once"
        )
    split_keys = [*FOLD_KEYS, "trial"]
    per_split = table.groupby(split_keys, sort=False)[["n_train", "threshold"]].nunique()
    varying = per_split[(per_split > 1).any(axis=1)]
    if len(varying):
        key = dict(zip(split_keys, varying.index[0]))
        raise ValueError(
            f"n_train and threshold must be constant within a split; split {key} has several values"
        )
    for column in ("model", "protocol", "cohort", SAMPLE_KEY):
        table[column] = table[column].astype(str)
    return table.astype(
        {
            "repeat": "int64",
            "trial": "int64",
            "y_true": "int8",
            "y_prob": "float64",
            "n_train": "int64",
            "threshold": "float64",
        }
    )


def _cohort_rng(seed: int, cohort: str) -> np.random.Generator:
    """Generator for one cohort's resamples: the same for every model and protocol."""
    return np.random.default_rng(
        np.random.SeedSequence([int(seed), zlib.crc32(str(cohort).encode())])
    )


# ----------------------------------------------------------------------------- tables


def fold_metrics(predictions: pd.DataFrame) -> pd.DataFrame:
    """The tidy results table: one row per (model, protocol, cohort, repeat),
    ``schema.FOLD_METRIC_COLUMNS``.

    Metrics of the repeat's pooled predictions; threshold metrics judge each row by its own
    split's threshold; ``n_train`` is the mean over the repeat's splits (rounded).
    """
    table = validate_predictions(predictions)
    y_true = table["y_true"].to_numpy()
    y_prob = table["y_prob"].to_numpy()
    threshold = table["threshold"].to_numpy()
    n_train = (
        table.groupby([*FOLD_KEYS, "trial"], sort=False)["n_train"]
        .first()
        .groupby(list(FOLD_KEYS))
        .mean()
    )
    rows = []
    for key, index in table.groupby(list(FOLD_KEYS), sort=False).indices.items():
        rows.append(
            {
                **dict(zip(FOLD_KEYS, key)),
                "n_train": int(round(float(n_train.loc[key]))),
                "n_test": len(index),
                "n_test_pos": int(y_true[index].sum()),
                **binary_metrics(y_true[index], y_prob[index], threshold[index]),
            }
        )
    result = pd.DataFrame(rows, columns=list(FOLD_METRIC_COLUMNS))
    result = result.astype(
        {"repeat": "int64", "n_train": "int64", "n_test": "int64", "n_test_pos": "int64"}
    )
    return result.sort_values(list(FOLD_KEYS), kind="stable").reset_index(drop=True)


def _cohort_replicates(
    table: pd.DataFrame, n_boot: int, seed: int, resample: str
) -> dict[tuple, np.ndarray]:
    """(model, protocol, cohort) -> bootstrap replicates (n_boot,) of the mean-over-repeats
    AUROC."""
    y_true = table["y_true"].to_numpy()
    y_prob = table["y_prob"].to_numpy()
    trials = table["repeat"].to_numpy()
    keys = table[SAMPLE_KEY].to_numpy()
    replicates = {}
    for key, index in table.groupby(list(COHORT_KEYS), sort=False).indices.items():
        replicates[key] = bootstrap_auroc_replicates(
            y_true[index],
            y_prob[index],
            trials[index],
            keys[index],
            n_boot,
            _cohort_rng(seed, key[2]),
            resample,
        )
    return replicates


def _cohort_table(
    table: pd.DataFrame, replicates: dict[tuple, np.ndarray], level: float
) -> pd.DataFrame:
    folds = fold_metrics(table)
    grouped = folds.groupby(list(COHORT_KEYS), sort=True)
    stats = grouped[list(METRICS)].agg(
        ["mean", "std"]
    )  # std: ddof=1 over repeats, NaN for one repeat
    stats.columns = [
        f"{metric}_{'sd' if stat == 'std' else stat}" for metric, stat in stats.columns
    ]
    result = stats.reset_index()
    result.insert(3, "n_repeats", grouped.size().to_numpy())
    patients = table.groupby(list(COHORT_KEYS), sort=True)[SAMPLE_KEY].nunique()
    result.insert(
        4,
        "n_patients",
        patients.reindex(pd.MultiIndex.from_frame(result[list(COHORT_KEYS)])).to_numpy(),
    )
    intervals = [
        percentile_ci(replicates[tuple(key)], level)
        for key in result[list(COHORT_KEYS)].itertuples(index=False)
    ]
    result["ci_low"] = [low for low, _ in intervals]
    result["ci_high"] = [high for _, high in intervals]
    return result[list(COHORT_SUMMARY_COLUMNS)].astype(
        {"n_repeats": "int64", "n_patients": "int64"}
    )


@dataclass(frozen=True)
class CohortBootstrap:
    """The patient-level bootstrap of every (model, protocol, cohort), drawn once and shared
    by the per-cohort table, the overall summary and the meta-analysis."""

    table: pd.DataFrame  # the validated predictions
    replicates: dict[tuple, np.ndarray]  # (model, protocol, cohort) -> (n_boot,) replicates
    cohorts: pd.DataFrame  # the per-cohort summary (``cohort_summary``)
    level: float


def cohort_bootstrap(
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> CohortBootstrap:
    table = validate_predictions(predictions)
    replicates = _cohort_replicates(table, n_boot, seed, resample)
    return CohortBootstrap(table, replicates, _cohort_table(table, replicates, level), level)


def cohort_summary(
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> pd.DataFrame:
    """Per (model, protocol, cohort): ``n_repeats``, ``n_patients``, ``<metric>_mean``/``_sd`` over
    repeats, ``ci_low``/``ci_high``.

    The CI is the patient-level stratified bootstrap percentile interval of the AUROC
    averaged over trials (``resample``: see :mod:`icb_kedro.evaluation.statistics`).
    """
    return cohort_bootstrap(predictions, n_boot, seed, level, resample).cohorts


def overall_summary(
    predictions: pd.DataFrame,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    resample: str = "patient",
) -> pd.DataFrame:
    """Per (model, protocol): unweighted mean over cohorts of the per-cohort means, with a CI.

    ``auroc_mean`` weights every cohort equally (a cohort is one setting, however many
    patients it has); ``ci_low``/``ci_high`` resample patients within each cohort with the
    cohorts fixed. Cohorts whose AUROC is undefined are left out (``n_cohorts`` counts the rest).
    """
    return overall_from_bootstrap(cohort_bootstrap(predictions, n_boot, seed, level, resample))


def overall_from_bootstrap(bootstrap: CohortBootstrap) -> pd.DataFrame:
    """``overall_summary`` of an already drawn bootstrap."""
    rows = []
    for (model, protocol), group in bootstrap.cohorts.groupby(["model", "protocol"], sort=True):
        defined = group[group["auroc_mean"].notna()]
        row = {"model": model, "protocol": protocol, "n_cohorts": len(defined)}
        row.update({f"{metric}_mean": defined[f"{metric}_mean"].mean() for metric in METRICS})
        row["auroc_cohort_sd"] = defined["auroc_mean"].std()
        stacked = [bootstrap.replicates[(model, protocol, cohort)] for cohort in defined["cohort"]]
        row["ci_low"], row["ci_high"] = (
            pooled_mean_ci(np.stack(stacked), bootstrap.level) if stacked else (np.nan, np.nan)
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(OVERALL_SUMMARY_COLUMNS)).astype({"n_cohorts": "int64"})


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
                    _cohort_rng(seed, cohort),
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


# ----------------------------------------------------------------------------- markdown

CAVEAT = (
    "**How much to trust these numbers.** AUROC is very noisy at these cohort sizes. Under "
    "the null, one cohort's AUROC has an SD of 0.054 (Mariathasan, 42 R / 91 NR) to 0.18 "
    "(Padron 3/20, Riaz 4/10), so a single cohort needs an AUROC of about 0.59 (Mariathasan) "
    "to 0.82-0.88 (Riaz, Padron) to differ from chance at p < .05, and the 95% CI of an "
    "AUROC of 0.70 spans 0.60-0.80 at best (Mariathasan) and 0.35-1.0 at worst (Padron). A "
    "20% test split (protocol transfer_paper) holds only 2-12 responder x non-responder pairs in "
    "the six small cohorts (144 in Mariathasan), so a split's AUROC moves in steps of 0.08-0.5 "
    "and its SE at 0.70 is 0.23-0.39: a mean +- sd over 10 splits mostly reflects split noise; "
    "hence the out-of-fold protocols, which score every patient. An "
    "unweighted mean over 7 cohort AUROCs has SE of about 0.042, so differences in mean "
    "AUROC below about 0.08 are not significant unless tested paired and at the patient "
    "level, as the DeLong comparisons above are; a paired difference needs to reach "
    "0.14 (Mariathasan) to 0.51 (Padron) for 80% power within one cohort. Label noise caps "
    "what any score can reach: if 10% of responders and 10% of non-responders are "
    "mislabelled (cohorts differ in how they label stable disease), a perfect biological "
    "score has an expected AUROC of 0.90. (Figures: reference/signatures_and_statistics.md, "
    "section 1; exact Mann-Whitney null and Hanley-McNeil SEs.)"
)


def _fmt(value: float, digits: int = 3) -> str:
    return "NA" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _fmt_p(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "NA"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def short_cohort_names(cohorts: list[str]) -> dict[str, str]:
    """Readable cohort labels: the last ``_`` part (``Melanoma_PD1_Hugo2016`` -> ``Hugo2016``) when
    unique."""
    short = {cohort: cohort.rsplit("_", 1)[-1] for cohort in cohorts}
    return short if len(set(short.values())) == len(short) else {c: c for c in cohorts}


def _protocol_order(protocols) -> list[str]:
    known = [p for p in PROTOCOLS if p in set(protocols)]
    return known + sorted(set(protocols) - set(known))


def summary_markdown(
    overall: pd.DataFrame,
    cohort_table: pd.DataFrame,
    comparisons: pd.DataFrame,
    meta: pd.DataFrame | None = None,
) -> str:
    """A readable report section: per protocol the overall AUROC table, the random-effects
    meta-analysis across cohorts (``meta``, optional), the per-cohort AUROC table, the
    significant paired differences, and a caveat on AUROC noise in small cohorts.

    Empty tables (e.g. ``pd.DataFrame()`` when no comparison was run) are allowed.
    """
    cohort_table = (
        cohort_table if len(cohort_table) else pd.DataFrame(columns=list(COHORT_SUMMARY_COLUMNS))
    )
    comparisons = (
        comparisons if len(comparisons) else pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    )
    comparisons = comparisons.assign(significant=comparisons["significant"].astype(bool))
    lines = ["## Model evaluation", ""]
    lines.append(
        "AUROC per model: computed on each repeat's pooled out-of-fold predictions (every "
        "labelled patient of the cohort scored once per repeat under transfer / within / loco; "
        "one 80/20 split per repeat under transfer_paper), averaged over repeats within each "
        "cohort, then the unweighted mean over "
        "cohorts; [95% CI] from a patient-level stratified bootstrap (patients resampled "
        "within cohorts, cohorts fixed). Paired differences: DeLong per cohort on the samples "
        "both models scored, combined across cohorts by random effects (DerSimonian-Laird), "
        "Benjamini-Hochberg q < 0.05 per protocol."
    )
    for protocol in _protocol_order(overall["protocol"].unique() if len(overall) else []):
        lines += ["", f"### Protocol `{protocol}`", ""]
        rows = overall[overall["protocol"] == protocol].sort_values("auroc_mean", ascending=False)
        shown = pd.DataFrame(
            {
                "model": rows["model"],
                "cohorts": rows["n_cohorts"],
                "AUROC [95% CI]": [
                    f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"
                    for m, lo, hi in zip(rows["auroc_mean"], rows["ci_low"], rows["ci_high"])
                ],
                "AUPRC": rows["auprc_mean"].map(_fmt),
                "accuracy": rows["accuracy_mean"].map(_fmt),
                "F1": rows["f1_mean"].map(_fmt),
                "Brier": rows["brier_mean"].map(_fmt),
            }
        )
        lines += [_markdown_table(shown), ""]
        if meta is not None and len(meta):
            pooled = meta[
                (meta["protocol"] == protocol) & meta["pooled_auroc"].notna()
            ].sort_values("pooled_auroc", ascending=False)
            if len(pooled):
                lines += [
                    "Random-effects meta-analysis across cohorts (DerSimonian-Laird; each cohort's "
                    "AUROC weighted by 1 / (its bootstrap variance + tau²); I² = share of the "
                    "spread that is between cohorts):",
                    "",
                    _markdown_table(
                        pd.DataFrame(
                            {
                                "model": pooled["model"],
                                "k": pooled["k"],
                                "pooled AUROC [95% CI]": [
                                    f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]"
                                    for m, lo, hi in zip(
                                        pooled["pooled_auroc"], pooled["ci_low"], pooled["ci_high"]
                                    )
                                ],
                                "I²": pooled["i2"].map(
                                    lambda v: f"{v:.0%}" if pd.notna(v) else "-"
                                ),
                                "tau²": pooled["tau2"].map(lambda v: _fmt(v, 4)),
                                "p (heterogeneity)": pooled["p_heterogeneity"].map(_fmt_p),
                                "not estimable": pooled["not_estimable"].replace("", "-"),
                            }
                        )
                    ),
                    "",
                ]

        per_cohort = cohort_table[cohort_table["protocol"] == protocol]
        if len(per_cohort):
            names = short_cohort_names(sorted(per_cohort["cohort"].unique()))
            cells = per_cohort.assign(
                cell=[
                    f"{_fmt(m, 2)} [{_fmt(lo, 2)}, {_fmt(hi, 2)}]"
                    for m, lo, hi in zip(
                        per_cohort["auroc_mean"], per_cohort["ci_low"], per_cohort["ci_high"]
                    )
                ],
                short=per_cohort["cohort"].map(names),
            )
            grid = (
                cells.pivot(index="model", columns="short", values="cell")
                .reindex(rows["model"])
                .fillna("-")
            )
            grid = grid[[names[c] for c in sorted(names)]].reset_index()
            lines += [
                "Per-cohort AUROC, mean over repeats [95% CI]:",
                "",
                _markdown_table(grid),
                "",
            ]

        combined = comparisons[
            (comparisons["protocol"] == protocol) & (comparisons["cohort"] == ALL_COHORTS)
        ]
        significant = combined[combined["significant"]].sort_values("p")
        if combined.empty:
            lines.append("No paired comparisons were run for this protocol.")
        elif significant.empty:
            lines.append(
                "No paired AUROC difference is significant after BH adjustment "
                f"({len(combined)} model pairs tested across cohorts)."
            )
        else:
            lines.append(
                "Significant paired AUROC differences across cohorts (q < 0.05; "
                f"{len(significant)} of {len(combined)} pairs):"
            )
            lines.append("")
            for row in significant.itertuples(index=False):
                lines.append(
                    f"- {row.model_a} vs {row.model_b}: difference {row.diff:+.3f} "
                    f"(95% CI {_fmt(row.ci_low)} to {_fmt(row.ci_high)}; {row.n_cohorts} cohorts), "
                    f"p = {_fmt_p(row.p)}, q = {_fmt_p(row.q)}"
                )
        per_cohort = comparisons[
            (comparisons["protocol"] == protocol) & (comparisons["cohort"] != ALL_COHORTS)
        ]
        usable = np.isfinite(per_cohort["se"].astype(float)) & (per_cohort["se"].astype(float) > 0)
        left_out = sorted(set(per_cohort["cohort"]) - set(per_cohort.loc[usable, "cohort"]))
        if left_out:  # never silently: a cohort without a DeLong SE cannot enter the combination
            lines += [
                "",
                "Left out of every combined test (no DeLong SE: a test split with one class, e.g. "
                f"a single responder, or identical rankings): {', '.join(left_out)}.",
            ]
        cohort_level = per_cohort[per_cohort["significant"]]
        if len(cohort_level):
            count = (
                "1 per-cohort difference has"
                if len(cohort_level) == 1
                else f"{len(cohort_level)} per-cohort differences have"
            )
            lines += ["", f"Within single cohorts, {count} q < 0.05 (see the comparisons table)."]
    lines += ["", CAVEAT, ""]
    return "\n".join(lines)
