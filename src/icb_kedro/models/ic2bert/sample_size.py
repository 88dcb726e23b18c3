"""The sample-size analysis of IC2Bert: test AUROC against the number of fine-tuning rows.

The paper's analysis: one 80/20 split of h (``transfer_paper`` split ``sample_size.trial``),
its 80 % subsampled to balanced sets of n training patients (n/2 responders, n/2
non-responders; ``repeats`` draws per n, n up to the largest balanced size), its 20 % scored;
n = 0 is the zero-shot model (other cohorts' labels only). ``sample_size_design`` fixes the
split and the sizes; ``sample_size_finetuned`` fine-tunes h's pretrained model (pooled head) on
each draw, ``sample_size_readouts`` fits IC2Bert's linear readout; the summary
(``sample_size_auroc``) gives the test AUROC per (cohort, n, repeat).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from icb_kedro.evaluation.metrics import binary_metrics
from icb_kedro.evaluation.protocols import FoldSpec
from icb_kedro.models.ic2bert.finetune_fits import (
    fit_full,
    predict_with,
    score_keys,
    train_source_model,
)
from icb_kedro.models.ic2bert.fold_inputs import (
    MODEL,
    cohort_of,
    cohort_size,
    fold_specs,
    labels_of,
)
from icb_kedro.models.ic2bert.readout_arms import _ReadoutArms
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.schema import SAMPLE_KEY

if TYPE_CHECKING:
    from icb_kedro.pipelines.ic2bert_finetune.config import FinetuneParams, SampleSize

SAMPLE_SIZE_COLUMNS = ("cohort", "n_train", "repeat", "trial", SAMPLE_KEY, "y_true", "y_prob")


def empty_sample_size_table() -> pd.DataFrame:
    """The sample-size table of a cohort the analysis does not cover (typed, no rows)."""
    columns = {
        c: pd.Series(dtype=t)
        for c, t in zip(
            SAMPLE_SIZE_COLUMNS,
            ("str", "int64", "int64", "int64", "str", "int64", "float64"),
            strict=True,
        )
    }
    return pd.DataFrame(columns)


class SampleSizeDesign(NamedTuple):
    spec: FoldSpec  # the paper's 80/20 split: its 80 % is subsampled, its 20 % scored
    target: np.ndarray  # h's training rows of that split
    y_target: np.ndarray
    y_test: np.ndarray
    sizes: list[int]  # balanced training sizes n (even, up to the largest balanced subset)
    source_keys: list[str]  # training rows of the loco fold (the n = 0 model)


def sample_size_design(
    tokens: pd.DataFrame, folds: pd.DataFrame, section: SampleSize, held_out: str
) -> SampleSizeDesign:
    """The split, h's training rows and the sizes n of the analysis (``section``:
    ``params.sample_size``)."""
    # The paper's analysis: one 80/20 split (transfer_paper split number ``trial``), its 80 %
    # subsampled to n training patients, its 20 % scored.
    paper_split = section.trial
    spec = next(
        (s for s in fold_specs(folds, "transfer_paper", held_out) if s.repeat == paper_split), None
    )
    if spec is None:
        raise ValueError(
            f"sample_size.trial {paper_split} is not an 80/20 split of {held_out!r} "
            "(folds.lodocv.paper.n_trials)"
        )
    cohort = cohort_of(tokens)
    target = np.asarray([k for k in spec.train_keys if cohort[k] == held_out])
    y_target = labels_of(tokens, list(target))
    y_test = labels_of(tokens, spec.test_keys)
    largest = 2 * int(min((y_target == 1).sum(), (y_target == 0).sum()))
    sizes = sorted({int(n) for n in section.n_train if 0 < int(n) <= largest and int(n) % 2 == 0})
    loco = fold_specs(folds, "loco", held_out, None)[0]
    return SampleSizeDesign(spec, target, y_target, y_test, sizes, loco.train_keys)


def _balanced_draws(
    design: SampleSizeDesign, section: SampleSize, seed: int
) -> Iterator[tuple[int, int, list]]:
    """(n, repeat, sorted keys) of every draw: n/2 responders and n/2 non-responders of h's
    training rows, ``section.repeats`` draws per n, each from its own seeded generator."""
    target, y_target = design.target, design.y_target
    for n in design.sizes:
        for repeat in range(section.repeats):
            rng = np.random.default_rng([seed, n, repeat])
            chosen = sorted(
                [
                    *rng.choice(target[y_target == 1], n // 2, replace=False),
                    *rng.choice(target[y_target == 0], n // 2, replace=False),
                ]
            )
            yield n, repeat, chosen


def _rows(
    held_out: str, design: SampleSizeDesign, n: int, repeat: int, y_prob: np.ndarray
) -> pd.DataFrame:
    """The scored test rows of one draw (``n`` = 0: the zero-shot model)."""
    return pd.DataFrame(
        {
            "cohort": held_out,
            "n_train": n,
            "repeat": repeat,
            "trial": design.spec.trial,
            SAMPLE_KEY: design.spec.test_keys,
            "y_true": design.y_test,
            "y_prob": y_prob,
        }
    )


def sample_size_readouts(
    features: pd.DataFrame,
    tokens: pd.DataFrame,
    params: FinetuneParams,
    held_out: str,
    design: SampleSizeDesign,
) -> pd.DataFrame:
    """The analysis with IC2Bert's linear readout (on its readout ``features``) fitted on the
    source rows (n = 0) and on each balanced draw."""
    section, seed = params.sample_size, params.seed
    spec, source_keys = design.spec, design.source_keys
    arms = _ReadoutArms(features, params, arms=(MODEL,))
    readout, _, _ = arms.fit(MODEL, source_keys, labels_of(tokens, source_keys), seed)
    rows = [_rows(held_out, design, 0, 0, arms.predict(MODEL, readout, spec.test_keys))]
    for n, repeat, chosen in _balanced_draws(design, section, seed):
        readout, _, _ = arms.fit(MODEL, chosen, labels_of(tokens, chosen), seed + 1000 * n + repeat)
        rows.append(
            _rows(held_out, design, n, repeat, arms.predict(MODEL, readout, spec.test_keys))
        )
    return pd.concat(rows, ignore_index=True)[list(SAMPLE_SIZE_COLUMNS)]


def sample_size_finetuned(
    bundle, tokens: pd.DataFrame, params: FinetuneParams, held_out: str, design: SampleSizeDesign
) -> pd.DataFrame:
    """The analysis with the pooled head: the zero-shot head (``params.zero_shot``) for n = 0,
    h's pretrained model fine-tuned on each balanced draw."""
    from icb_kedro.models.ic2bert.predict import pooled_features

    section, seed = params.sample_size, params.seed
    spec, source_keys = design.spec, design.source_keys
    keys = sorted(set(source_keys) | set(spec.test_keys))
    features = dict(
        zip(
            keys,
            pooled_features(bundle.config, bundle.params, token_matrix(tokens, keys)),
            strict=True,
        )
    )
    zero = params.zero_shot
    head_params, _, _ = train_source_model(
        bundle, features, tokens, source_keys, params, zero, seed
    )
    y_zero = predict_with(bundle, head_params, features, tokens, spec.test_keys, zero, params)
    rows = [_rows(held_out, design, 0, 0, y_zero)]
    for n, repeat, chosen in _balanced_draws(design, section, seed):
        result, _ = fit_full(
            bundle,
            bundle.params,
            chosen,
            tokens,
            params,
            seed + 1000 * n + repeat,
            cohort_size(tokens, held_out),
        )
        y_prob = score_keys(bundle, result.params, spec.test_keys, tokens, params.eval_batch_size)
        rows.append(_rows(held_out, design, n, repeat, y_prob))
    return pd.concat(rows, ignore_index=True)[list(SAMPLE_SIZE_COLUMNS)]


def sample_size_auroc(sample_size: pd.DataFrame) -> pd.DataFrame:
    """Test AUROC per (cohort, n_train, repeat)."""
    rows = []
    for (cohort, n_train, repeat), group in sample_size.groupby(
        ["cohort", "n_train", "repeat"], sort=True
    ):
        metrics = binary_metrics(group["y_true"].to_numpy(), group["y_prob"].to_numpy())
        rows.append(
            {
                "cohort": cohort,
                "n_train": int(n_train),
                "repeat": int(repeat),
                "n_test": len(group),
                "auroc": metrics["auroc"],
            }
        )
    return pd.DataFrame(rows, columns=["cohort", "n_train", "repeat", "n_test", "auroc"])
