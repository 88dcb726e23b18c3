"""AMU's architecture hyper-parameters (:class:`AmuConfig`) and its encoder engines.

Plain data, no Paddle: the typed ``params:amu`` block (``icb_kedro.models.amu.parameters``)
reads its ``amu.model`` defaults and checks from here without loading Paddle.
:mod:`icb_kedro.models.amu.model` builds the network from it (and re-exports it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

# "fused": AMU's encoder layers run as one fused CPU node each (models/amu/fused.py; same
# parameters and initialisation); "eager": Paddle's own layers (the reference).
Engine = Literal["eager", "fused"]
ENGINES: tuple[str, ...] = get_args(Engine)


@dataclass(frozen=True)
class AmuConfig:
    """Architecture hyper-parameters (defaults = the published model, spec 1.3)."""

    n_genes: int = 160
    d_model: int = 20  # gene-embedding width = transformer width
    n_heads: int = 10  # spec 3.7: the paper's 8 heads cannot divide d_model=20; the code used 10
    n_layers: int = 8
    ffn_dim: int = 200
    dropout: float = (
        0.1  # residual, FFN-activation and attention-probability dropout (Paddle default)
    )
    attn_dropout: float | None = (
        None  # None = same as dropout (the original); 0 is ~2x faster on CPU
    )
    conv_channels: int = 5
    head_dropout: float = 0.5  # the two Dropout(0.5) around BatchNorm / before the classifier
    n_classes: int = 2

    def __post_init__(self) -> None:
        if self.n_genes < 1:
            raise ValueError(f"AmuConfig.n_genes must be >= 1, got {self.n_genes}")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"AmuConfig: d_model={self.d_model} is not divisible by n_heads={self.n_heads} "
                "(the paper's 8 heads with d_model 20 are impossible; use 10)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
