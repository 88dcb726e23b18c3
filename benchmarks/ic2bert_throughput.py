"""IC2Bert throughput on this machine's CPU (a benchmark, not a test).

Prints, in one run: the peak matmul FLOP/s that ``jnp.dot`` reaches here, then for the
pretraining step (masked expression modelling, the real jitted update) at the paper's size
(983 genes, batch 32) its jit compile time, tokens/s, FLOPs per step (XLA's cost analysis)
and the achieved FLOP/s as a fraction of that peak; fine-tuning samples/s (the real
supervised update); and the peak resident memory (``resource.getrusage``).

    .venv/bin/python benchmarks/ic2bert_throughput.py                 # paper size
    .venv/bin/python benchmarks/ic2bert_throughput.py --genes 376     # the shared cohorts' panel
    .venv/bin/python benchmarks/ic2bert_throughput.py --variants      # + the design alternatives
    .venv/bin/python benchmarks/ic2bert_throughput.py --profile       # + where a step's time goes

The machine may be shared: the load average is printed next to the figures, and every
timing is the best of several repeats (the least disturbed one).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from icb_kedro.models.ic2bert import finetune_loop, optim, pretrain_loop, train_config
from icb_kedro.models.ic2bert.config import IC2BertConfig
from icb_kedro.models.ic2bert.model import build_model
from icb_kedro.models.ic2bert.weights import init_params


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    wanted = [
        f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "avx_vnni")
    ]
    return " ".join(wanted) or "no AVX2/AVX-512"


def best_time(fn, repeats: int) -> tuple[float, float]:
    """(best, median) wall seconds of ``fn()`` (which must block until done)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def peak_matmul_flops(size: int, repeats: int) -> float:
    """FLOP/s of a float32 [size, size] @ [size, size] jnp.dot (best of ``repeats``)."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, a).block_until_ready()
    best, _ = best_time(lambda: dot(a, a).block_until_ready(), repeats)
    return 2 * size**3 / best


def xla_flops(stage) -> float:
    analysis = stage.cost_analysis()
    if isinstance(analysis, list):  # older JAX returns one dict per device
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))


def pretrain_step_flops(config: IC2BertConfig, batch: int) -> float:
    """FLOPs of one pretraining step, from XLA's cost analysis of the *unrolled* program.

    The cost analysis counts a loop body once, so the scanned layers / micro-batches of the
    timed program would be under-counted; the unrolled, full-batch program computes the same
    function (only lowered here, never compiled or run).
    """
    flat = _countable(config)
    update, _, init, _ = pretrain_loop._mlm_functions(flat, train_config.MaskingConfig(), 0)
    tokens = jnp.zeros((batch, config.n_genes), jnp.int32)
    state = jax.eval_shape(lambda: init(0, tokens))
    gene_ids = jnp.arange(config.n_genes, dtype=jnp.int32)
    return xla_flops(
        update.lower(
            state, tokens, jnp.ones(batch, jnp.float32), optim.StepHyper(1e-4, 0.01, 1.0), gene_ids
        )
    )


def _countable(config: IC2BertConfig) -> IC2BertConfig:
    """The same function as one XLA's cost analysis counts in full: unrolled blocks, and the
    explicit attention for the chunked one (whose query blocks are a loop, counted once; the
    QK^T it recomputes in the backward pass is not counted: useful FLOPs only)."""
    attention = "einsum" if config.attention == "chunked" else config.attention
    return dataclasses.replace(config, scan_layers=False, attention=attention)


def finetune_step_flops(config: IC2BertConfig, batch: int) -> float:
    flat = _countable(config)
    update, _, optimizer = finetune_loop._supervised_functions(flat, "all", 0)
    params = jax.eval_shape(
        lambda: build_model(flat).init(
            jax.random.PRNGKey(0), jnp.zeros((1, config.n_genes), jnp.int32), True
        )
    )
    state = jax.eval_shape(
        lambda p: optim.TrainingState(
            p, optimizer.init(p), jax.random.PRNGKey(0), jnp.zeros((), jnp.int32)
        ),
        params,
    )
    tokens = jnp.zeros((batch, config.n_genes), jnp.int32)
    vector = jnp.ones(batch, jnp.float32)
    loss_args = (np.float32(0.6), np.float32(0.4), np.float32(2.0))
    return xla_flops(
        update.lower(state, tokens, vector, vector, optim.StepHyper(1e-4, 0.01, 1.0), loss_args)
    )


def pretrain_step(
    config: IC2BertConfig, batch: int, repeats: int, micro_batch: int, profile: bool = False
) -> dict:
    """The real pretraining update (masking + forward + backward + clip/AdamW), donated state."""
    update, _, init, _ = pretrain_loop._mlm_functions(
        config, train_config.MaskingConfig(), micro_batch
    )
    tokens = jnp.asarray(
        np.random.default_rng(1).integers(0, config.n_bins, size=(batch, config.n_genes)), jnp.int32
    )
    weights = jnp.ones(batch, jnp.float32)
    hyper = optim.StepHyper(1e-4, 0.01, 1.0)
    state = init(0, tokens)
    gene_ids = jnp.arange(config.n_genes, dtype=jnp.int32)
    started = time.perf_counter()
    compiled = update.lower(state, tokens, weights, hyper, gene_ids).compile()
    compile_seconds = time.perf_counter() - started
    flops = pretrain_step_flops(config, batch)
    holder = {"state": state}

    def step() -> None:
        holder["state"], metrics = compiled(holder["state"], tokens, weights, hyper, gene_ids)
        metrics["loss"].block_until_ready()

    step()  # warm-up
    best, median = best_time(step, repeats)
    return {
        "compile_s": compile_seconds,
        "step_s": best,
        "median_step_s": median,
        "flops": flops,
        "tokens_per_s": batch * config.n_genes / best,
        "profile": profile_op_kinds(step, repeats) if profile else None,
    }


# XLA:CPU op names (HLO instruction names in the trace) -> what the time was spent on.
_OP_KINDS = [
    ("matmuls (YNNPACK / Eigen dots)", re.compile(r"^(ynn_fusion|dot|dot_general)\b")),
    (
        "layout copies (transposes, scan residual stacking and slicing)",
        re.compile(r"(copy|dynamic-update-slice|dynamic-slice|transpose)"),
    ),
    ("exp (softmax)", re.compile(r"exponential")),
]
# Spans that enclose other ops (their time is already in their body's ops) and the
# executor's own spans and the Python frames of the trace.
_NOT_OPS = re.compile(r"^(while|call|conditional)\b|^(ThunkExecutor|\$|Slinky|Pjit)")


def profile_op_kinds(step, repeats: int) -> list[tuple[str, float]]:
    """Thread-milliseconds per step by kind of XLA op, from a ``jax.profiler`` trace of
    ``repeats`` steps (ops on the two cores overlap, so the total can exceed the wall time)."""
    with tempfile.TemporaryDirectory() as folder:
        with jax.profiler.trace(folder, create_perfetto_trace=True):
            for _ in range(repeats):
                step()
        (path,) = glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True)
        with gzip.open(path) as handle:
            events = json.load(handle)["traceEvents"]
    totals: collections.Counter = collections.Counter()
    for event in events:
        name = event.get("name", "")
        if event.get("ph") != "X" or _NOT_OPS.search(name):
            continue
        kind = next((label for label, pattern in _OP_KINDS if pattern.search(name)), None)
        totals[kind or "other fusions (elementwise, reductions)"] += event.get("dur", 0)
    return [(kind, micros / 1e3 / repeats) for kind, micros in totals.most_common()]


def finetune_step(
    config: IC2BertConfig, batch: int, repeats: int, micro_batch: int
) -> dict[str, float]:
    """The real supervised fine-tuning update (focal loss, all parameters trainable)."""
    update, _, optimizer = finetune_loop._supervised_functions(config, "all", micro_batch)
    params = jax.tree_util.tree_map(jnp.asarray, init_params(config, 0))
    state = optim.TrainingState(
        params, optimizer.init(params), jax.random.PRNGKey(0), jnp.zeros((), jnp.int32)
    )
    tokens = jnp.asarray(
        np.random.default_rng(2).integers(0, config.n_bins, size=(batch, config.n_genes)), jnp.int32
    )
    labels = jnp.asarray(np.arange(batch) % 2, jnp.float32)
    weights = jnp.ones(batch, jnp.float32)
    hyper = optim.StepHyper(1e-4, 0.01, 1.0)
    loss_args = (np.float32(0.6), np.float32(0.4), np.float32(2.0))
    started = time.perf_counter()
    compiled = update.lower(state, tokens, labels, weights, hyper, loss_args).compile()
    compile_seconds = time.perf_counter() - started
    holder = {"state": state}

    def step() -> None:
        holder["state"], loss = compiled(holder["state"], tokens, labels, weights, hyper, loss_args)
        loss.block_until_ready()

    step()
    best, _ = best_time(step, repeats)
    return {
        "compile_s": compile_seconds,
        "step_s": best,
        "samples_per_s": batch / best,
        "flops": finetune_step_flops(config, batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--genes", type=int, default=983, help="sequence length (983 = the paper's panel)"
    )
    parser.add_argument(
        "--batch", type=int, default=32, help="pretraining batch (32 = the paper's)"
    )
    parser.add_argument("--bins", type=int, default=4)
    parser.add_argument(
        "--attention",
        default="chunked",
        choices=["chunked", "einsum", "fused"],
        help="attention implementation (chunked: conf/base and conf/paper)",
    )
    parser.add_argument(
        "--finetune-batches",
        type=int,
        nargs="*",
        default=[8, 32],
        help="fine-tuning tier batch sizes",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--micro-batch",
        type=int,
        default=train_config.PretrainConfig.micro_batch_size,
        help="gradient-accumulation micro-batch (0 = off)",
    )
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--variants", action="store_true", help="also time the design alternatives")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also print the pretraining step's time by kind of XLA op (jax.profiler trace)",
    )
    parser.add_argument(
        "--huge-pages",
        action="store_true",
        help=(
            "re-run under GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (transparent huge pages for malloc)"
        ),
    )
    args = parser.parse_args()
    if args.huge_pages and "glibc.malloc.hugetlb" not in os.environ.get("GLIBC_TUNABLES", ""):
        # glibc reads tunables at process start only: re-execute this script with it set.
        # XLA allocates every step's temporaries afresh; with 4 KiB pages the page faults of
        # those hundreds of MB cost a large share of a CPU step on this VM.
        env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)

    config = IC2BertConfig(n_genes=args.genes, n_bins=args.bins, attention=args.attention)
    print(
        f"JAX {jax.__version__} on {jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; CPU "
        f"flags: {cpu_flags()}"
    )
    print(
        f"load average before: {os.getloadavg()[0]:.2f}; "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}"
    )
    peak = peak_matmul_flops(args.matmul_size, max(args.repeats, 5))
    print(f"peak jnp.dot (float32 {args.matmul_size}^2): {peak / 1e9:.1f} GFLOP/s")

    result = pretrain_step(config, args.batch, args.repeats, args.micro_batch, args.profile)
    achieved = result["flops"] / result["step_s"]
    print(
        f"pretraining  genes={args.genes} batch={args.batch} (micro-batch {args.micro_batch}, "
        f"{args.attention} attention): jit "
        f"compile {result['compile_s']:.1f} s, step {result['step_s']:.3f} s (median "
        f"{result['median_step_s']:.3f}), {result['tokens_per_s']:,.0f} tokens/s, "
        f"{result['flops'] / 1e9:.1f} GFLOP/step, {achieved / 1e9:.1f} GFLOP/s = "
        f"{achieved / peak:.0%} of peak matmul"
    )
    for kind, milliseconds in result["profile"] or []:
        print(f"  {milliseconds:8.1f} thread-ms per step  {kind}")
    for batch in args.finetune_batches:
        tuned = finetune_step(config, batch, args.repeats, args.micro_batch)
        fraction = tuned["flops"] / tuned["step_s"] / peak
        print(
            f"fine-tuning  genes={args.genes} batch={batch}: jit compile {tuned['compile_s']:.1f} "
            f"s, {tuned['samples_per_s']:.1f} samples/s ({fraction:.0%} of peak matmul)"
        )
    if args.variants:
        no_micro = pretrain_step(config, args.batch, max(2, args.repeats // 2), 0)
        print(
            "  variant no micro-batching (whole batch at once): compile "
            f"{no_micro['compile_s']:.1f} s, step {no_micro['step_s']:.3f} s, "
            f"{no_micro['tokens_per_s']:,.0f} tokens/s, "
            f"{no_micro['flops'] / no_micro['step_s'] / peak:.0%} of peak"
        )
        for name, change in [
            ("einsum attention (explicit probabilities)", {"attention": "einsum"}),
            ("fused attention (jax.nn.dot_product_attention)", {"attention": "fused"}),
            ("threefry dropout (hk.dropout)", {"dropout_rng": "threefry"}),
            ("unrolled blocks (no layer_stack)", {"scan_layers": False}),
            ("bfloat16 matmuls", {"matmul_dtype": "bfloat16"}),
        ]:
            variant = pretrain_step(
                dataclasses.replace(config, **change),
                args.batch,
                max(2, args.repeats // 2),
                args.micro_batch,
            )
            print(
                f"  variant {name}: compile {variant['compile_s']:.1f} s, step "
                f"{variant['step_s']:.3f} s, {variant['tokens_per_s']:,.0f} tokens/s, "
                f"{variant['flops'] / variant['step_s'] / peak:.0%} of peak"
            )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"peak resident memory: {peak_rss:,.0f} MiB; load average after: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
