"""AMU training and inference throughput on CPU: Paddle's eager layers vs the fused engine, side by
side.

    python benchmarks/amu_throughput.py [--genes 160] [--threads 2] [--steps 8] [--rounds 3]

The published network (8 post-LN encoder layers, d_model 20, 10 heads of width 2, FFN 200)
at batch 32. A training step = forward + cross-entropy + backward + Adam update (train
mode, every dropout on); inference = forward in eval mode without gradients. The two
engines are measured in alternating rounds in one process, so a noisy machine slows both
alike; the speed-up is the median of the per-round ratios. Also printed: both engines'
parameter counts and the largest eval-mode output difference on one fixed input (the fused
path must equal the eager one to 1e-5), the process CPU time per sample, and the achieved
FLOP/s as a share of this machine's float32 matmul peak (numpy/BLAS on the same threads).
FLOPs are counted analytically (multiply-add = 2): a training step is taken as 3x the forward.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def forward_flops_per_sample(
    n_genes: int, d_model: int = 20, n_heads: int = 10, ffn: int = 200, layers: int = 8
) -> float:
    """Multiply-adds x 2 of one sample's forward pass (encoder + head)."""
    g, e = n_genes, d_model
    per_layer = (
        2 * g * e * 3 * e + 2 * 2 * g * g * e + 2 * g * e * e + 2 * 2 * g * e * ffn
    )  # qkv, QK^T + PV, out, FFN
    head = 2 * g * e * 5 + 2 * g * 2  # 1x1 conv to 5 channels, linear G -> 2
    return layers * per_layer + head


def peak_matmul_flops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    import numpy as np
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).normal(size=(size, size)).astype(np.float32)
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ a
        best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_engine(engine: str, n_genes: int, batch: int, seed: int = 0):
    """(train_step, infer_step, network) for one engine, same initial weights for both."""
    import contextlib

    import numpy as np
    import paddle

    from icb_kedro.models.amu.model import AmuConfig, AmuNet
    from icb_kedro.models.amu.paddle_runtime import single_threaded_blas

    paddle.seed(seed)
    net = AmuNet(AmuConfig(n_genes=n_genes), engine=engine)
    optimizer = paddle.optimizer.Adam(
        learning_rate=1e-4,
        parameters=net.parameters(),
        weight_decay=paddle.regularizer.L2Decay(1e-4),
    )
    rng = np.random.default_rng(seed)
    values = paddle.to_tensor(rng.normal(size=(batch, n_genes)).astype("float32"))
    labels = paddle.to_tensor(rng.integers(0, 2, size=batch))
    blas = single_threaded_blas if engine == "fused" else contextlib.nullcontext

    def train_step() -> None:
        net.train()
        with blas():
            loss = paddle.nn.functional.cross_entropy(net(values), labels)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()

    def infer_step() -> None:
        net.eval()
        with paddle.no_grad(), blas():
            net(values)

    return train_step, infer_step, net


def measure(step, steps: int, batch: int) -> tuple[float, float]:
    """(samples/s, CPU ms per sample) over ``steps`` calls after one warm-up call."""
    step()
    wall, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(steps):
        step()
    wall, cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    return steps * batch / wall, 1000 * cpu / (steps * batch)


def equivalence(n_genes: int) -> tuple[int, int, float]:
    """Parameter counts of both engines and their largest eval-mode output difference."""
    import numpy as np
    import paddle

    from icb_kedro.models.amu.model import AmuConfig, AmuNet, trainable_parameter_count

    nets = []
    for engine in ("eager", "fused"):
        paddle.seed(7)
        nets.append(AmuNet(AmuConfig(n_genes=n_genes), engine=engine))
    values = paddle.to_tensor(np.random.default_rng(7).normal(size=(32, n_genes)).astype("float32"))
    outputs = []
    for net in nets:
        net.eval()
        with paddle.no_grad():
            outputs.append(net(values).numpy())
    return (
        trainable_parameter_count(nets[0]),
        trainable_parameter_count(nets[1]),
        float(np.abs(outputs[0] - outputs[1]).max()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--genes", type=int, default=160, help="tokens per sample (160: the study panel)"
    )
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU math threads (Paddle and the fused kernels)"
    )
    parser.add_argument("--steps", type=int, default=8, help="timed batches per engine and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating eager/fused rounds")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--infer-batch",
        type=int,
        default=256,
        help="batch for inference (no optimisation constraint)",
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    from icb_kedro.models.amu.paddle_runtime import configure_paddle

    configure_paddle(seed=0, num_threads=args.threads, engine="fused")
    print(
        f"AMU throughput: {args.genes} genes, train batch {args.batch}, inference batch "
        f"{args.infer_batch}, {args.threads} threads, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    n_eager, n_fused, diff = equivalence(args.genes)
    print(
        f"parameters: eager {n_eager:,}, fused {n_fused:,}; eval-mode max |logit difference| "
        f"{diff:.1e} (must be < 1e-5)"
    )
    peak = peak_matmul_flops(args.threads)
    flops_train = 3 * forward_flops_per_sample(args.genes)
    flops_infer = forward_flops_per_sample(args.genes)
    print(
        f"peak float32 matmul (numpy/BLAS, {args.threads} threads): {peak / 1e9:.1f} GFLOP/s; "
        f"AMU: {flops_infer / 1e6:.1f} MFLOP forward, {flops_train / 1e6:.1f} MFLOP per "
        "training sample"
    )

    engines = {name: (make_engine(name, args.genes, args.batch),
                      make_engine(name, args.genes, args.infer_batch))
               for name in ("eager", "fused")}  # fmt: skip
    results: dict[str, dict[str, list[float]]] = {
        n: {"train": [], "train_cpu": [], "infer": [], "infer_cpu": []} for n in engines
    }
    for round_index in range(args.rounds):
        for name, ((train_step, _, _), (_, infer_step, _)) in engines.items():
            rate, cpu = measure(
                train_step, args.steps if name == "fused" else max(2, args.steps // 4), args.batch
            )
            results[name]["train"].append(rate)
            results[name]["train_cpu"].append(cpu)
            rate, cpu = measure(infer_step, max(2, args.steps // 2), args.infer_batch)
            results[name]["infer"].append(rate)
            results[name]["infer_cpu"].append(cpu)
        print(
            f"  round {round_index + 1}: "
            + ", ".join(
                f"{n} train {r['train'][-1]:.1f}/s infer {r['infer'][-1]:.0f}/s"
                for n, r in results.items()
            ),
            flush=True,
        )

    print(
        f"{'engine':>7} {'train samples/s':>16} {'CPU ms/sample':>14} {'% of peak':>10} "
        f"{'infer samples/s':>16} {'CPU ms/sample':>14} {'% of peak':>10}"
    )
    for name, r in results.items():
        train, infer = statistics.median(r["train"]), statistics.median(r["infer"])
        print(
            f"{name:>7} {train:>16.1f} {statistics.median(r['train_cpu']):>14.2f} "
            f"{train * flops_train / peak:>10.1%} {infer:>16.1f} "
            f"{statistics.median(r['infer_cpu']):>14.2f} {infer * flops_infer / peak:>10.1%}"
        )
    train_ratio = statistics.median(
        f / e for f, e in zip(results["fused"]["train"], results["eager"]["train"], strict=True)
    )
    infer_ratio = statistics.median(
        f / e for f, e in zip(results["fused"]["infer"], results["eager"]["infer"], strict=True)
    )
    print(
        f"speed-up fused/eager (median of per-round ratios): training {train_ratio:.1f}x, "
        f"inference {infer_ratio:.1f}x"
    )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"peak resident memory: {peak_rss:,.0f} MiB; load average after: {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
