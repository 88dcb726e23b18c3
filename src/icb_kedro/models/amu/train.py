"""Fit and apply AMU (and the AMU paper's small CNN) in Paddle on CPU, seeded and deterministic.

Training recipe (spec 1.5, with the gaps of spec 3.7 filled and documented):

- cross-entropy on logits (spec 3.5: the original applied softmax twice);
- Adam with *coupled* L2 1e-4 (``paddle.regularizer.L2Decay``, added to the gradient as in
  the original, not AdamW);
- the paper's "two-step decay": piecewise x0.1 at two milestones (fractions of the epochs,
  default 50% / 75%; the original code has no scheduler at all);
- batch 32, reshuffled every epoch by a seeded generator; fixed number of epochs (no early
  stopping, so nothing is selected on evaluation rows);
- per-gene standardisation and SMOTE fitted on the *training rows only* (spec 3.1: the
  original oversampled before splitting). Synthetic rows never leave ``fit``.

The settings are a :class:`~icb_kedro.models.amu.train_config.TrainConfig`
(``train_config``); a fit returns a plain, picklable
:class:`~icb_kedro.models.amu.fitted_network.FittedNetwork` (``fitted_network``: numpy
weights, no Paddle objects); the CPU runtime (device, threads, seed) is set up by
``paddle_runtime``. ``TrainConfig`` and ``FittedNetwork`` stay importable from here.
:func:`build_network` is looked up in this module by every builder of a network here (tests
patch it on this module).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import paddle
from paddle import nn

from .cnn import AmuCnn, CnnConfig
from .fitted_network import FittedNetwork
from .model import AmuConfig, AmuNet
from .paddle_runtime import configure_paddle, keep_freed_memory, single_threaded_blas
from .train_config import TrainConfig

__all__ = [
    "ARCHITECTURES",
    "FittedNetwork",  # re-exported from .fitted_network
    "TrainConfig",  # re-exported from .train_config
    "build_network",
    "fit_network",
    "fit_predict",
    "initial_network",
    "load_network",
    "oversample_training_rows",
    "predict_proba",
]

logger = logging.getLogger(__name__)

ARCHITECTURES: tuple[str, ...] = ("amu", "cnn")


def build_network(
    architecture: str, model_config: dict[str, Any], engine: str = "eager"
) -> nn.Layer:
    """A fresh network of the named architecture (``engine`` applies to AMU's encoder only)."""
    if architecture == "amu":
        return AmuNet(AmuConfig(**model_config), engine=engine)
    if architecture == "cnn":
        return AmuCnn(CnnConfig(**model_config))
    raise ValueError(f"unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")


def _check_xy(
    X: np.ndarray, y: np.ndarray, n_features: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"fit: X must be 2-D with one row per label; got X {X.shape}, y {y.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"fit: X has {X.shape[1]} feature columns, the model expects {n_features}")
    if not np.isfinite(X).all():
        raise ValueError(f"fit: X holds {int((~np.isfinite(X)).sum())} non-finite values")
    labels = set(np.unique(y).tolist())
    if not labels <= {0, 1} or len(labels) < 2:
        raise ValueError(
            f"fit: y must hold both classes 0 and 1 (and nothing else), got {sorted(labels)}"
        )
    return X, y.astype(np.int64)


def oversample_training_rows(
    X: np.ndarray, y: np.ndarray, k_neighbors: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """SMOTE on training rows only; returns the real rows first, then the synthetic ones.

    ``k_neighbors`` is lowered to (minority count - 1) for tiny classes; with a single
    minority row SMOTE is impossible and the rows are returned unchanged (logged).
    """
    from imblearn.over_sampling import SMOTE

    minority = int(min(np.bincount(y, minlength=2)))
    if minority < 2 or minority == len(y) - minority:
        if minority < 2:
            logger.warning("SMOTE skipped: the minority class has %d training row(s)", minority)
        return X, y
    smote = SMOTE(k_neighbors=min(k_neighbors, minority - 1), random_state=seed)
    X_res, y_res = smote.fit_resample(X, y)
    # imblearn appends synthetic rows after the originals; keep that contract explicit.
    if not np.array_equal(X_res[: len(X)], X):
        raise RuntimeError("SMOTE reordered the original rows; cannot separate synthetic rows")
    return X_res, y_res


def fit_network(
    X: np.ndarray,
    y: np.ndarray,
    *,
    architecture: str = "amu",
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    features: Sequence[str] | None = None,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> FittedNetwork:
    """Train one network on training rows ``X`` (samples x features) and labels ``y`` (0/1)."""
    train_config = train_config or TrainConfig()
    model_config = dict(model_config or {})
    model_config.setdefault("n_genes", int(np.asarray(X).shape[1]))
    X, y = _check_xy(X, y, model_config["n_genes"])
    features = list(features) if features is not None else [f"x{i}" for i in range(X.shape[1])]
    if len(features) != X.shape[1]:
        raise ValueError(f"fit: {len(features)} feature names for {X.shape[1]} columns")
    started = time.perf_counter()
    engine = train_config.engine if architecture == "amu" else "eager"
    configure_paddle(train_config.seed, train_config.num_threads, engine)

    mean = scale = None
    if train_config.standardize:
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(X)  # training rows only
        mean, scale = scaler.mean_.copy(), scaler.scale_.copy()
        X = scaler.transform(X)
    n_real = len(X)
    if train_config.smote:
        X, y = oversample_training_rows(X, y, train_config.smote_k_neighbors, train_config.seed)

    network = build_network(architecture, model_config, engine)
    schedule = paddle.optimizer.lr.PiecewiseDecay(
        boundaries=train_config.milestone_epochs(),
        values=[
            train_config.learning_rate * train_config.lr_gamma**i
            for i in range(len(train_config.lr_milestones) + 1)
        ],
    )
    optimizer = paddle.optimizer.Adam(
        learning_rate=schedule,
        parameters=network.parameters(),
        weight_decay=paddle.regularizer.L2Decay(train_config.l2),
    )
    features_t = paddle.to_tensor(X.astype(np.float32))
    labels_t = paddle.to_tensor(y)
    network.train()
    with single_threaded_blas() if engine == "fused" else contextlib.nullcontext():
        history = _train_epochs(
            network, optimizer, schedule, features_t, labels_t, train_config, on_epoch_end
        )
    state = {name: value.numpy().copy() for name, value in network.state_dict().items()}
    return FittedNetwork(
        architecture=architecture,
        model_config=model_config,
        train_config=asdict(train_config),
        features=features,
        state=state,
        scaler_mean=mean,
        scaler_scale=scale,
        loss_history=history,
        n_train=n_real,
        n_synthetic=len(X) - n_real,
        fit_seconds=time.perf_counter() - started,
    )


def _train_epochs(
    network, optimizer, schedule, features_t, labels_t, train_config, on_epoch_end
) -> list[float]:
    """The fixed-epoch loop: seeded reshuffle, batch 32, lr schedule stepped per epoch."""
    loss_fn = nn.CrossEntropyLoss()  # on logits
    rng = np.random.default_rng(train_config.seed)
    n_rows = int(features_t.shape[0])
    history = []
    for epoch in range(train_config.epochs):
        order = rng.permutation(n_rows)
        total = 0.0
        for start in range(0, len(order), train_config.batch_size):
            batch = paddle.to_tensor(order[start : start + train_config.batch_size])
            loss = loss_fn(network(features_t[batch]), labels_t[batch])
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            total += float(loss) * len(batch)
        schedule.step()  # milestones are in epochs
        history.append(total / n_rows)
        if on_epoch_end is not None:
            on_epoch_end(epoch, history[-1])
    return history


def initial_network(fitted: FittedNetwork) -> nn.Layer:
    """The network of ``fitted`` as :func:`fit_network` initialised it, before its first step.

    ``fit_network`` seeds Paddle's global generator with ``train_config["seed"]`` on the CPU
    (:func:`configure_paddle`) and draws nothing from it (standardisation and SMOTE are
    numpy/scikit-learn) before :func:`build_network`, so seeding the same way and building
    the same architecture and config repeats every initial weight exactly. The caller's
    Paddle device and CPU generator state are restored afterwards, so this changes no later
    random draw. In eval mode; only for inspection (e.g. embedding drift), never for training.
    """
    device = paddle.get_device()
    paddle.set_device("cpu")
    state = paddle.get_rng_state("cpu")
    try:
        paddle.seed(int(fitted.train_config["seed"]))
        network = build_network(fitted.architecture, fitted.model_config)
    finally:
        paddle.set_rng_state(state, "cpu")
        paddle.set_device(device)
    network.eval()
    return network


def load_network(fitted: FittedNetwork, engine: str = "eager") -> nn.Layer:
    """Rebuild the Paddle network of a fitted model, in eval mode.

    ``engine="eager"`` (the default: what the registered pyfunc uses, numba not needed) or
    "fused" (the fold loops: same outputs to float32 rounding, several times faster).
    """
    keep_freed_memory()
    if engine == "fused":
        from .fused import set_kernel_threads

        set_kernel_threads(int(fitted.train_config.get("num_threads", 2)))
    network = build_network(fitted.architecture, fitted.model_config, engine)
    network.set_state_dict({name: paddle.to_tensor(value) for name, value in fitted.state.items()})
    network.eval()
    return network


def predict_proba(
    fitted: FittedNetwork, X: np.ndarray, batch_size: int = 64, network: nn.Layer | None = None
) -> np.ndarray:
    """P(responder) for each row of ``X`` (same feature order as in training)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != len(fitted.features):
        raise ValueError(
            f"predict_proba: X must have {len(fitted.features)} feature columns, got "
            f"shape {X.shape}"
        )
    if not np.isfinite(X).all():
        raise ValueError(f"predict_proba: X holds {int((~np.isfinite(X)).sum())} non-finite values")
    if fitted.scaler_mean is not None:
        X = (X - fitted.scaler_mean) / fitted.scaler_scale
    network = network or load_network(fitted)
    out = []
    fused = getattr(network, "engine", "eager") == "fused"
    with paddle.no_grad(), single_threaded_blas() if fused else contextlib.nullcontext():
        for start in range(0, len(X), batch_size):
            logits = network(paddle.to_tensor(X[start : start + batch_size].astype(np.float32)))
            out.append(nn.functional.softmax(logits, axis=-1)[:, 1].numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def fit_predict(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    *,
    architecture: str = "amu",
    model_config: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    features: Sequence[str] | None = None,
) -> tuple[FittedNetwork, np.ndarray, np.ndarray]:
    """Fit on training rows; return the model, P(responder) on the training rows and on
    ``X_test``."""
    fitted = fit_network(
        X_train,
        y_train,
        architecture=architecture,
        model_config=model_config,
        train_config=train_config,
        features=features,
    )
    network = load_network(fitted, fitted.engine)
    return (
        fitted,
        predict_proba(fitted, X_train, network=network),
        predict_proba(fitted, X_test, network=network),
    )
