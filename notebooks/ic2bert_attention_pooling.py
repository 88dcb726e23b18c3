# %% [markdown]
# # IC2Bert readouts: does attention pooling help? (issue 12)
#
# Issue 12 asks for the readouts `pooled_head` (the paper's mean pooling), the per-gene
# expected-bin readout, "and attention pooling if it helps". This notebook measures it on the
# frozen encoders of the last `make run` (conf/base), under the zero-shot protocol (loco: train
# on every other cohort's labelled patients, score every labelled patient of the held-out
# cohort), the same rows for every readout:
#
# * **per-gene** - the default readout: each gene's expected bin under the MLM head, L2-LR on
#   the ANOVA top-128 (the `ic2bert_readout_features` of the run, `fit_linear_readout`);
# * **mean-pooled** - L2-LR on the mean of the final-LayerNorm states over measured genes
#   (what the paper's head sees);
# * **attention-pooled** - a learned query q scores each gene's final state h_g, the pooled
#   vector is sum_g softmax(h_g . q) h_g, then a logistic head; q and the head are trained on
#   the training rows with Adam and L2, the number of steps chosen on an inner 25 % split of
#   the training rows (never the held-out cohort), then refitted on all of them.
#
# The encoder is frozen in all three, and read in the same 256-gene contexts as the per-gene
# readout (the length it was pretrained on). Run from the project root after `make run`:
#
#     .venv/bin/python notebooks/ic2bert_attention_pooling.py
#
# (a percent-format script: Jupyter with jupytext opens it as a notebook). ~3 min on 2 cores.

# %%
from __future__ import annotations

import os
from pathlib import Path

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit

from icb_kedro.models.ic2bert.fold_inputs import MODEL, fold_bundle
from icb_kedro.models.ic2bert.predict import context_chunks
from icb_kedro.models.ic2bert.readout import fit_linear_readout
from icb_kedro.models.ic2bert.tokenizer import token_matrix
from icb_kedro.paths import namespace_for
from icb_kedro.schema import LABEL, SAMPLE_KEY

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
project = Path.cwd()
bootstrap_project(project)
with KedroSession.create(project_path=project) as session:
    context = session.load_context()
    catalog, params = context.catalog, context.params
readout = params["ic2bert_finetune"]["linear_readout"]
folds_all = catalog.load("lodocv_folds")
cohorts = sorted(folds_all["held_out"].unique())


# %% Final-LayerNorm states [n, L, D] of a frozen encoder, read in the readout's contexts
def _final_ln_states(config, tokens, gene_ids):
    """The model's forward pass, returning the final LayerNorm's output (the per-gene states
    that the MLM head reads and the paper's head mean-pools)."""
    from icb_kedro.models.ic2bert.model import IC2Bert

    captured = {}

    def keep_final_ln(next_f, args, kwargs, ctx):
        out = next_f(*args, **kwargs)
        if ctx.module.module_name.endswith("final_ln"):
            captured["states"] = out
        return out

    with hk.intercept_methods(keep_final_ln):
        IC2Bert(config)(tokens, False, False, gene_ids)
    return captured["states"]


def final_states(bundle, tokens: np.ndarray, context: int, seed: int, batch: int = 8):
    """[n, L, D] states of ``tokens``, read in the per-gene readout's seeded contexts."""
    config = bundle.config
    states_fn = jax.jit(hk.transform(lambda t, ids: _final_ln_states(config, t, ids)).apply)
    out = np.empty((*tokens.shape, config.d_model), np.float32)
    for chunk in context_chunks(tokens.shape[1], context, seed):
        ids = jnp.asarray(chunk, jnp.int32)
        for start in range(0, len(tokens), batch):
            rows = tokens[start : start + batch][:, chunk]
            pad = batch - len(rows)
            padded = np.concatenate([rows, rows[:1].repeat(pad, 0)]) if pad else rows
            states = states_fn(bundle.params, None, jnp.asarray(padded, jnp.int32), ids)
            out[start : start + len(rows), chunk] = np.asarray(states)[: len(rows)]
    return out


# %% Attention pooling: q, w, b trained on frozen states (training rows only)
def attention_pool_logits(theta, states, measured):
    scores = jnp.einsum("nld,d->nl", states, theta["q"])
    scores = jnp.where(measured, scores, -jnp.inf)
    weights = jax.nn.softmax(scores, axis=1)
    pooled = jnp.einsum("nl,nld->nd", weights, states)
    return pooled @ theta["w"] + theta["b"]


def train_attention_pool(states, measured, y, steps, seed, lr=1e-2, l2=1e-3, eval_sets=()):
    d = states.shape[-1]
    key = jax.random.PRNGKey(seed)
    theta = {
        "q": 0.01 * jax.random.normal(key, (d,)),
        "w": jnp.zeros(d),
        "b": jnp.asarray(np.log(y.mean() / (1 - y.mean()))),
    }
    optimizer = optax.adam(lr)
    state = optimizer.init(theta)
    y = jnp.asarray(y, jnp.float32)

    def loss(theta):
        logits = attention_pool_logits(theta, states, measured)
        penalty = l2 * (jnp.sum(theta["w"] ** 2) + jnp.sum(theta["q"] ** 2))
        return optax.sigmoid_binary_cross_entropy(logits, y).mean() + penalty

    @jax.jit
    def step(theta, state):
        grads = jax.grad(loss)(theta)
        updates, state = optimizer.update(grads, state)
        return optax.apply_updates(theta, updates), state

    curve = []
    for i in range(steps):
        theta, state = step(theta, state)
        if eval_sets and (i + 1) % 10 == 0:
            s, m, yy = eval_sets
            p = np.asarray(attention_pool_logits(theta, s, m))
            curve.append((i + 1, roc_auc_score(yy, p)))
    return theta, curve


# %% Per held-out cohort: the three readouts on the same loco rows
rows = []
for held_out in cohorts:
    ns = namespace_for(held_out)
    bundle = fold_bundle(catalog.load(f"{ns}.ic2bert_pretrained"), held_out)
    tokens = catalog.load(f"{ns}.ic2bert_tokens")
    folds = folds_all[(folds_all["held_out"] == held_out) & (folds_all["scheme"] == "kfold")]
    first = folds[(folds["repeat"] == 0) & (folds["trial"] == 0)]
    train_keys = first.loc[first["role"] == "source", SAMPLE_KEY].tolist()
    test_keys = folds.loc[folds["role"].str.startswith("target"), SAMPLE_KEY].unique().tolist()
    labels = tokens.set_index(SAMPLE_KEY)[LABEL]
    train_keys = [k for k in train_keys if pd.notna(labels.get(k))]  # labelled rows only
    test_keys = [k for k in test_keys if pd.notna(labels.get(k))]
    y_train, y_test = labels.loc[train_keys].to_numpy(int), labels.loc[test_keys].to_numpy(int)
    matrix = token_matrix(tokens, train_keys + test_keys)
    seed = int(params["ic2bert_finetune"]["seed"])  # the context partition's seed
    states = final_states(bundle, matrix, int(readout["context"]), seed)
    measured = matrix != bundle.config.missing_id
    tr, te = slice(0, len(train_keys)), slice(len(train_keys), None)

    # per-gene readout, exactly as the run fits it (its stored features)
    features = catalog.load(f"{ns}.ic2bert_readout_features")
    features = features[features["arm"] == MODEL].set_index(SAMPLE_KEY).drop(columns="arm")
    per_gene, _ = fit_linear_readout(
        features.loc[train_keys].to_numpy(), y_train, "per_gene_expected_bin",
        tuple(readout["Cs"]), int(readout["n_splits"]), 0, readout["n_features"],
    )  # fmt: skip
    auc_gene = roc_auc_score(y_test, per_gene.decision(features.loc[test_keys].to_numpy()))

    # mean pooling over measured genes (the paper's pooled vector), L2-LR
    mean = (states * measured[..., None]).sum(1) / np.maximum(measured.sum(1), 1)[:, None]
    pooled, _ = fit_linear_readout(mean[tr], y_train, "pooled_lr", tuple(readout["Cs"]), 3, 0)
    auc_mean = roc_auc_score(y_test, pooled.decision(mean[te]))

    # attention pooling: steps chosen on an inner split of the training rows, then refit
    inner_fit, inner_val = next(
        StratifiedShuffleSplit(1, test_size=0.25, random_state=0).split(mean[tr], y_train)
    )
    s_tr, m_tr = jnp.asarray(states[tr]), jnp.asarray(measured[tr])
    _, curve = train_attention_pool(
        s_tr[inner_fit], m_tr[inner_fit], y_train[inner_fit], 300, 0,
        eval_sets=(s_tr[inner_val], m_tr[inner_val], y_train[inner_val]),
    )  # fmt: skip
    best_steps, inner_auc = max(curve, key=lambda c: (c[1], -c[0]))
    theta, _ = train_attention_pool(s_tr, m_tr, y_train, best_steps, 0)
    train_auc = roc_auc_score(y_train, np.asarray(attention_pool_logits(theta, s_tr, m_tr)))
    logits = attention_pool_logits(theta, jnp.asarray(states[te]), jnp.asarray(measured[te]))
    auc_attn = roc_auc_score(y_test, np.asarray(logits))
    rows.append(
        {
            "cohort": held_out.rsplit("_", 1)[-1], "n_train": len(train_keys),
            "n_test": len(test_keys), "per_gene": auc_gene, "mean_pooled": auc_mean,
            "attention_pooled": auc_attn, "attn_steps": best_steps,
            "attn_inner_auc": inner_auc, "attn_train_auc": train_auc,
        }
    )  # fmt: skip
    print(pd.DataFrame(rows[-1:]).round(3).to_string(index=False, header=len(rows) == 1))

# %% Summary: mean AUROC over held-out cohorts and paired differences
table = pd.DataFrame(rows)
print(table.round(3).to_string(index=False))
means = table[["per_gene", "mean_pooled", "attention_pooled"]].mean()
print("\nmean AUROC over", len(table), "held-out cohorts:", means.round(3).to_dict())
for other in ("per_gene", "mean_pooled"):
    diff = table["attention_pooled"] - table[other]
    print(
        f"attention_pooled - {other}: mean {diff.mean():+.3f}, better in "
        f"{(diff > 0).sum()} of {len(diff)} cohorts"
    )
