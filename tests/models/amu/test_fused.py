"""The fused AMU encoder equals Paddle's eager one: parameters, outputs, gradients; its kernels are
right."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from icb_kedro.models.amu import attention_kernels as kernels
from icb_kedro.models.amu.model import AmuConfig, AmuNet
from icb_kedro.models.amu.paddle_runtime import configure_paddle
from icb_kedro.models.amu.train import fit_network, predict_proba
from icb_kedro.models.amu.train_config import TrainConfig


def _pair(config: AmuConfig, seed: int = 3) -> tuple[AmuNet, AmuNet]:
    configure_paddle(seed, 2, "fused")
    eager = AmuNet(config)
    paddle.seed(seed)
    fused = AmuNet(config, engine="fused")
    return eager, fused


def _expression(n: int, n_genes: int, seed: int = 0) -> paddle.Tensor:
    return paddle.to_tensor(np.random.default_rng(seed).normal(size=(n, n_genes)).astype("float32"))


def test_fused_network_has_the_eager_parameters_and_initialisation() -> None:
    eager, fused = _pair(AmuConfig())
    eager_state, fused_state = eager.state_dict(), fused.state_dict()
    assert list(eager_state) == list(fused_state)
    for name, value in eager_state.items():
        np.testing.assert_array_equal(value.numpy(), fused_state[name].numpy(), err_msg=name)


def test_fused_eval_outputs_equal_eager_to_1e5_on_the_published_model() -> None:
    eager, fused = _pair(AmuConfig())  # 160 genes, 8 layers, 10 heads of width 2
    eager.eval()
    fused.eval()
    values = _expression(32, 160)
    with paddle.no_grad():
        np.testing.assert_allclose(fused(values).numpy(), eager(values).numpy(), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("config", "batch"),
    [
        (AmuConfig(), 32),  # the published model
        (AmuConfig(n_genes=37, d_model=12, n_heads=3, n_layers=2, ffn_dim=24), 5),  # odd shapes
    ],
)
def test_inference_kernel_equals_the_layer_by_layer_pass_and_eager(config, batch) -> None:
    # Under no_grad the fused encoder runs one whole-stack kernel (eval_kernel); with
    # gradients on, the same eval pass goes layer by layer through the autograd nodes.
    eager, fused = _pair(config)
    eager.eval()
    fused.eval()
    values = _expression(batch, config.n_genes, seed=4)
    with paddle.no_grad():
        kernel = fused(values).numpy()
        reference = eager(values).numpy()
    layer_by_layer = fused(values)
    assert not layer_by_layer.stop_gradient  # the autograd path, not the kernel
    np.testing.assert_allclose(kernel, layer_by_layer.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(kernel, reference, atol=1e-5, rtol=0)


def test_inference_kernel_is_bit_identical_on_one_and_two_threads() -> None:
    import numba

    from icb_kedro.models.amu.fused import set_kernel_threads

    _, fused = _pair(AmuConfig(n_layers=2))
    fused.eval()
    values = _expression(24, 160, seed=5)
    outputs = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS), 1):
        set_kernel_threads(threads)
        with paddle.no_grad():
            outputs.append(fused(values).numpy())
    for again in outputs[1:]:
        np.testing.assert_array_equal(outputs[0], again)


def test_scalar_kernel_exp_is_accurate_over_the_softmax_range() -> None:
    from numba import njit

    from icb_kedro.models.amu.attention_kernels import EXACT_ORDER, exp_nonpositive

    x = np.linspace(-87.0, 0.0, 4001, dtype=np.float32)
    scalar = njit(fastmath=EXACT_ORDER)(
        lambda v: np.array([exp_nonpositive(e) for e in v], np.float32)
    )(x)
    np.testing.assert_allclose(scalar, np.exp(x.astype(np.float64)), rtol=4e-6)


def test_fused_gradients_equal_eager_without_dropout() -> None:
    eager, fused = _pair(AmuConfig(n_genes=40, n_layers=2, dropout=0.0, head_dropout=0.0))
    values = _expression(16, 40, seed=1)
    labels = paddle.to_tensor(np.random.default_rng(2).integers(0, 2, 16))
    for net in (eager, fused):
        net.train()
        paddle.nn.functional.cross_entropy(net(values), labels).backward()
    pairs = [
        (name, p, q)
        for (name, p), (_, q) in zip(
            eager.named_parameters(), fused.named_parameters(), strict=True
        )
    ]
    scale = max(float(p.grad.abs().max()) for _, p, _ in pairs if p.grad is not None)
    checked = 0
    for name, p, q in pairs:
        if p.grad is None:
            assert q.grad is None, name
            continue
        # k_proj.bias has a mathematically zero gradient (softmax ignores a per-row shift): both are
        # ~1e-9 noise.
        np.testing.assert_allclose(
            q.grad.numpy(), p.grad.numpy(), atol=1e-5 * scale, rtol=1e-3, err_msg=name
        )
        checked += 1
    assert (
        checked == 2 * 16 + 6
    )  # both layers' 16 + embedding, conv, BN weight and bias, classifier weight and bias


def test_attention_kernel_gradients_with_dropout_match_finite_differences() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 12, 3, 2)).astype(np.float32) for _ in range(3))
    weights = rng.normal(size=q.shape).astype(np.float32)
    scale, p_drop, key = np.float32(2**-0.5), 0.3, np.uint32(12345)

    def loss(q_, k_, v_) -> float:
        out, _, _ = kernels.attention_forward(q_, k_, v_, scale, p_drop, key, 16)
        return float((out.astype(np.float64) * weights).sum())

    out, lse, mask = kernels.attention_forward(q, k, v, scale, p_drop, key, 16)
    assert 0.5 < mask.mean() < 0.9  # the mask the backward pass reads: 1 = kept (p_drop 0.3)
    grads = kernels.attention_backward(q, k, v, out, lse, mask, weights, scale, p_drop, 16)
    step = 1e-2
    for which, grad in enumerate(grads):
        for index in [(0, 0, 0, 0), (1, 5, 2, 1), (0, 11, 1, 0), (1, 3, 0, 1)]:
            plus = [q.copy(), k.copy(), v.copy()]
            minus = [q.copy(), k.copy(), v.copy()]
            plus[which][index] += step
            minus[which][index] -= step
            numeric = (loss(*plus) - loss(*minus)) / (2 * step)
            assert grad[index] == pytest.approx(numeric, abs=2e-3, rel=2e-2), (which, index)


def test_fused_layer_gradients_with_every_dropout_match_finite_differences() -> None:
    """With its dropout keys fixed, a fused layer is a deterministic function of x and its
    parameters: its backward pass must be that function's gradient (masks included)."""
    from icb_kedro.models.amu import fused

    rng = np.random.default_rng(0)
    width, heads, ffn = 20, 10, 16
    shapes = (
        [(width, width), (width,)] * 4
        + [(width, ffn), (ffn,), (ffn, width), (width,)]
        + [(width,)] * 4
    )
    params = [(rng.normal(size=shape) * 0.3).astype(np.float32) for shape in shapes]
    params[12] += 1.0  # LayerNorm gains near 1
    params[14] += 1.0
    x = rng.normal(size=(2, 8, width)).astype(np.float32)
    weights = rng.normal(size=x.shape).astype(np.float32)
    keys, rates = np.array([11, 22, 33, 44], dtype=np.uint32), (0.3, 0.3, 0.3)

    def loss(x_, params_) -> float:
        y, _ = fused.encoder_layer_forward(x_, params_, heads, rates, 1e-5, keys)
        return float((y.astype(np.float64) * weights).sum())

    _, cache = fused.encoder_layer_forward(x, params, heads, rates, 1e-5, keys)
    dx, grads = fused.encoder_layer_backward(weights.copy(), cache)
    step = 1e-2
    for which in range(len(params)):
        for _ in range(2):
            index = tuple(int(rng.integers(0, n)) for n in params[which].shape)
            plus, minus = [p.copy() for p in params], [p.copy() for p in params]
            plus[which][index] += step
            minus[which][index] -= step
            numeric = (loss(x, plus) - loss(x, minus)) / (2 * step)
            assert grads[which][index] == pytest.approx(numeric, abs=5e-3, rel=5e-2), (
                fused.LAYER_PARAMETERS[which],
                index,
            )
    index = (1, 3, 7)
    plus, minus = x.copy(), x.copy()
    plus[index] += step
    minus[index] -= step
    assert dx[index] == pytest.approx(
        (loss(plus, params) - loss(minus, params)) / (2 * step), abs=5e-3, rel=5e-2
    )


def test_attention_dropout_is_seeded_and_drops_at_its_rate() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (rng.normal(size=(4, 30, 2, 2)).astype(np.float32) for _ in range(3))
    scale = np.float32(0.7)
    same = [
        kernels.attention_forward(q, k, v, scale, 0.1, np.uint32(7), block)[0]
        for block in (16, 32, 48)
    ]
    np.testing.assert_array_equal(
        same[0], same[1]
    )  # the block size changes no bit (30 rows: 2 blocks or 1)
    np.testing.assert_array_equal(same[0], same[2])
    assert not np.allclose(
        same[0], kernels.attention_forward(q, k, v, scale, 0.1, np.uint32(8), 32)[0]
    )
    mask = kernels.dropout_mask(1_000_000, 0.1, np.uint32(99))
    np.testing.assert_allclose(np.unique(mask), [0.0, 1 / 0.9], rtol=1e-6)
    assert np.mean(mask == 0) == pytest.approx(0.1, abs=0.002)  # 6.7 binomial SDs
    assert mask.mean() == pytest.approx(1.0, abs=0.003)  # inverted dropout keeps the expectation


def test_kernels_are_deterministic_on_two_threads() -> None:
    import numba

    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(2)
    q, k, v, grad = (rng.normal(size=(32, 40, 10, 2)).astype(np.float32) for _ in range(4))
    scale, key = np.float32(0.7), np.uint32(11)
    runs = []
    for _ in range(4):
        out, lse, mask = kernels.attention_forward(q, k, v, scale, 0.1, key, 48)
        runs.append(
            (
                out,
                lse,
                mask,
                *kernels.attention_backward(q, k, v, out, lse, mask, grad, scale, 0.1, 48),
            )
        )
    for run in runs[1:]:
        for first, again in zip(runs[0], run, strict=True):
            np.testing.assert_array_equal(first, again)


def test_kernel_exp_is_accurate_over_the_softmax_range() -> None:
    x = np.linspace(-87.0, 0.0, 4001, dtype=np.float32)
    mantissa, bits = np.empty_like(x), np.empty(x.size, np.int32)
    kernels.exp_parts(x, mantissa, bits, np.float32(0.0))
    approx = mantissa.astype(np.float64) * bits.view(np.float32)
    np.testing.assert_allclose(approx, np.exp(x.astype(np.float64)), rtol=4e-6)


def test_fused_training_is_deterministic_and_learns() -> None:
    rng = np.random.default_rng(0)
    y = (np.arange(64) % 2).astype(int)
    X = rng.normal(size=(64, 16))
    X[:, :4] += 1.5 * y[:, None]
    config = TrainConfig(epochs=30, learning_rate=1e-3, smote=False, seed=5, engine="fused")
    model = {"n_layers": 2, "ffn_dim": 32}
    first = fit_network(X, y, model_config=model, train_config=config)
    second = fit_network(X, y, model_config=model, train_config=config)
    for name, value in first.state.items():
        np.testing.assert_array_equal(value, second.state[name], err_msg=name)
    assert (
        first.loss_history[-1] < 0.6 * first.loss_history[0]
    )  # eager on the same data: 1.11 -> 0.59
    prob = predict_proba(first, X)  # eager inference of fused-trained weights
    assert np.mean((prob > 0.5) == y) > 0.9


def test_fused_training_is_bit_identical_on_one_and_two_threads() -> None:
    # run_folds gives a lone fold the idle workers' threads: that must not change a number.
    rng = np.random.default_rng(0)
    y = (np.arange(96) % 2).astype(int)
    X = rng.normal(size=(96, 40))
    X[:, :4] += y[:, None]
    model = {"n_layers": 2, "ffn_dim": 32}
    states = [
        fit_network(
            X,
            y,
            model_config=model,
            train_config=TrainConfig(epochs=3, learning_rate=1e-3, seed=3, num_threads=t),
        ).state
        for t in (1, 2)
    ]
    for name, value in states[0].items():
        np.testing.assert_array_equal(value, states[1][name], err_msg=name)


def test_lone_fits_get_the_idle_threads_on_the_fused_engine_only() -> None:
    from icb_kedro.models.amu.train_config import lone_fit_threads

    fused = TrainConfig(engine="fused", num_threads=1)
    assert lone_fit_threads(fused, n_jobs=2, n_fits=1).num_threads == 2
    assert lone_fit_threads(fused, n_jobs=2, n_fits=5).num_threads == 1  # every worker busy
    eager = TrainConfig(engine="eager", num_threads=1)
    assert lone_fit_threads(eager, n_jobs=2, n_fits=1).num_threads == 1


def test_row_block_kernels_equal_numpy_and_do_not_depend_on_the_thread_count() -> None:
    import numba

    rng = np.random.default_rng(4)
    n = 2 * kernels.ROW_BLOCK + 37  # a partial last block
    x, dout = (rng.normal(size=(n, 20)).astype(np.float32) for _ in range(2))
    w1, w2 = (rng.normal(size=s).astype(np.float32) * 0.2 for s in ((20, 50), (50, 20)))
    b1, b2 = (rng.normal(size=s).astype(np.float32) * 0.1 for s in (50, 20))
    runs = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        hidden, out = kernels.ffn_forward(x, w1, b1, w2, b2, 0.0, np.uint32(0))
        dx_ffn = np.zeros_like(x)
        dw1, db1, dw2 = kernels.ffn_backward(dout, hidden, x, w1, w2, 0.0, dx_ffn)
        dx_linear = np.zeros((n, 50), np.float32)
        dw, db = kernels.linear_backward(dout, hidden, w2, dx_linear)
        runs.append(
            (
                hidden,
                out,
                dx_ffn,
                dw1,
                db1,
                dw2,
                kernels.linear_forward(x, w1, b1),
                dx_linear,
                dw,
                db,
            )
        )
    for first, again in zip(*runs, strict=True):
        np.testing.assert_array_equal(first, again)
    x64, d64 = x.astype(np.float64), dout.astype(np.float64)
    h64 = np.maximum(x64 @ w1 + b1, 0.0)
    dh64 = (d64 @ w2.T) * (h64 > 0)
    expected = (
        h64, h64 @ w2 + b2, dh64 @ w1.T, x64.T @ dh64, dh64.sum(axis=0), h64.T @ d64,
        x64 @ w1 + b1, d64 @ w2.T, h64.T @ d64, d64.sum(axis=0),
    )  # fmt: skip
    for got, want in zip(runs[0], expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
