"""AMU training and inference throughput (samples/s) on CPU, Paddle eager mode.

    python benchmarks/amu_throughput.py [--genes 160 78] [--threads 2] [--steps 5]

Measures the published architecture (8 encoder layers, d_model 20, 10 heads) at batch 32:
one training step = forward + cross-entropy + backward + Adam update; inference = forward
in eval mode without gradients. Reports wall-clock samples/s and, because a shared machine
can steal cycles, the process CPU time per sample as well. Random inputs: the cost does not
depend on the values.
"""

from __future__ import annotations

import argparse
import os
import resource
import time


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(n_genes: int, threads: int, steps: int, batch: int, attn_dropout: float | None) -> dict[str, float]:
    import numpy as np
    import paddle

    from icb_kedro.models.amu.model import AmuConfig, AmuNet
    from icb_kedro.models.amu.train import configure_paddle

    configure_paddle(seed=0, num_threads=threads)
    net = AmuNet(AmuConfig(n_genes=n_genes, attn_dropout=attn_dropout))
    optimizer = paddle.optimizer.Adam(
        learning_rate=1e-4, parameters=net.parameters(), weight_decay=paddle.regularizer.L2Decay(1e-4)
    )
    rng = np.random.default_rng(0)
    values = paddle.to_tensor(rng.normal(size=(batch, n_genes)).astype("float32"))
    labels = paddle.to_tensor(rng.integers(0, 2, size=batch))

    def train_step() -> None:
        loss = paddle.nn.functional.cross_entropy(net(values), labels)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    net.train()
    train_step()  # warm-up: allocations, kernel selection
    wall, cpu = time.perf_counter(), _cpu_seconds()
    for _ in range(steps):
        train_step()
    train_wall, train_cpu = time.perf_counter() - wall, _cpu_seconds() - cpu

    net.eval()
    with paddle.no_grad():
        net(values)
        wall, cpu = time.perf_counter(), _cpu_seconds()
        for _ in range(steps):
            net(values)
        infer_wall, infer_cpu = time.perf_counter() - wall, _cpu_seconds() - cpu
    n = steps * batch
    return {
        "train_samples_per_s": n / train_wall,
        "train_cpu_ms_per_sample": 1000 * train_cpu / n,
        "infer_samples_per_s": n / infer_wall,
        "infer_cpu_ms_per_sample": 1000 * infer_cpu / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genes", type=int, nargs="+", default=[160, 78], help="tokens per sample (160 study, 78 cohort panel)")
    parser.add_argument("--threads", type=int, default=2, help="Paddle CPU math threads")
    parser.add_argument("--steps", type=int, default=5, help="timed batches per measurement")
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    load = os.getloadavg()[0]
    print(f"AMU throughput, batch {args.batch}, {args.threads} threads, {os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"{'genes':>5} {'attn dropout':>12} {'train samples/s':>16} {'train CPU ms/sample':>20} {'infer samples/s':>16} {'infer CPU ms/sample':>20}")
    for n_genes in args.genes:
        for attn_dropout in (None, 0.0):
            r = measure(n_genes, args.threads, args.steps, args.batch, attn_dropout)
            label = "0.1 (orig.)" if attn_dropout is None else "0"
            print(
                f"{n_genes:>5} {label:>12} {r['train_samples_per_s']:>16.1f} {r['train_cpu_ms_per_sample']:>20.1f} "
                f"{r['infer_samples_per_s']:>16.1f} {r['infer_cpu_ms_per_sample']:>20.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
