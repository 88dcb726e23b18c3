"""AMU's optimisation settings: :class:`TrainConfig` and the helpers that derive one from another.

:class:`TrainConfig` holds the training recipe's knobs (epochs, batch, Adam with coupled L2,
the two-step learning-rate decay, training-row standardisation and SMOTE, seed, CPU threads,
engine), validated on construction (:meth:`TrainConfig.from_dict` reads a plain mapping of
them); :func:`with_seed` gives one per fold/trial and
:func:`lone_fit_threads` hands idle workers' threads to the fits when there are fewer fits
than worker processes. The recipe itself is described in :mod:`icb_kedro.models.amu.train`.

:class:`TrainConfig` is the source of truth for the recipe's defaults and checks: the typed
``params:amu`` block (``icb_kedro.models.amu.parameters``) takes its ``amu.train`` defaults
from it and builds one with :meth:`~icb_kedro.models.amu.parameters.AmuConfig.train_config`.
Plain data: importing this module loads no Paddle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .architecture import ENGINES, Engine


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (defaults = the paper's re-run scripts, spec 1.5)."""

    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-4
    l2: float = 1e-4  # coupled L2 (Paddle L2Decay), as the original
    lr_milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of `epochs` where lr *= lr_gamma
    lr_gamma: float = 0.1
    standardize: bool = True  # per-gene z-score, fitted on training rows
    smote: bool = True  # oversample the minority class inside the training rows only
    smote_k_neighbors: int = 5
    seed: int = 42
    num_threads: int = 2  # CPU math threads for this process
    # "fused": AMU's encoder layers run as one fused CPU node each (models/amu/fused.py; same
    # parameters and initialisation, ~7x the training throughput); "eager": Paddle's own layers.
    # The CNN has no encoder and ignores it.
    engine: Engine = "fused"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                f"TrainConfig: epochs and batch_size must be >= 1, got {self.epochs}, "
                f"{self.batch_size}"
            )
        if self.learning_rate <= 0 or self.l2 < 0:
            raise ValueError(
                "TrainConfig: learning_rate must be > 0 and l2 >= 0, got "
                f"{self.learning_rate}, {self.l2}"
            )
        if self.engine not in ENGINES:
            raise ValueError(f"TrainConfig.engine must be one of {ENGINES}, got {self.engine!r}")
        if any(not 0 < m < 1 for m in self.lr_milestones) or list(self.lr_milestones) != sorted(
            self.lr_milestones
        ):
            raise ValueError(
                "TrainConfig.lr_milestones must be increasing fractions in (0, 1), got "
                f"{self.lr_milestones}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainConfig:
        values = dict(values or {})
        unknown = set(values) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"TrainConfig: unknown settings {sorted(unknown)}")
        if "lr_milestones" in values:
            values["lr_milestones"] = tuple(float(m) for m in values["lr_milestones"])
        return cls(**values)

    def milestone_epochs(self) -> list[int]:
        """Epoch indices at which the learning rate drops (strictly increasing, >= 1)."""
        epochs = []
        for fraction in self.lr_milestones:
            epoch = max(1, round(fraction * self.epochs))
            epochs.append(max(epoch, epochs[-1] + 1) if epochs else epoch)
        return epochs


def lone_fit_threads(train_config: TrainConfig, n_jobs: int, n_fits: int) -> TrainConfig:
    """``train_config`` with the idle workers' threads given to its fits when there are fewer
    fits than worker processes (e.g. loco: one fold per cohort node; the final model).

    Only for the fused engine, whose results are bit-identical on any thread count
    (tests/models/amu/test_fused.py); eager Paddle's reductions are not tested for that, so
    it keeps its configured threads and its results stay independent of ``n_jobs``.
    """
    n_jobs, n_fits = max(1, int(n_jobs)), max(1, int(n_fits))
    if train_config.engine != "fused" or n_fits >= n_jobs:
        return train_config
    return replace(train_config, num_threads=int(train_config.num_threads) * (n_jobs // n_fits))


def with_seed(config: TrainConfig, seed: int) -> TrainConfig:
    """The same settings with another seed (one per fold/trial)."""
    return replace(config, seed=int(seed))
