"""AMU network (Attention mechanism Model for melanoma iMMUnotherapy response) in Paddle.

Follows ``model_spec.md`` section 1.3, with the flaws of section 3 fixed. Shapes:
B = batch, G = genes (tokens), D = embedding width (20), C = conv channels (5).

    x [B, G] --(x_g * e_g)--> tokens [B, G, D] --8 x post-LN encoder--> [B, G, D]
      --transpose--> [B, D, G] --Conv1D D->C, k=1, no bias--> [B, C, G] --Dropout(.5)
      --BatchNorm1D(C)--> --ReLU--> --max over C--> [B, G] --Dropout(.5)--> Linear G->2 --> logits

Differences from the original code (each cited in place): 10 heads, not the paper's 8
(spec 1.3/3.7: 8 cannot divide 20); logits out, softmax only at prediction time (spec 3.5:
the original applied softmax twice); the unused second embedding and BatchNorm1D(1) are
gone (spec 3.5: dead parameters).
"""

from __future__ import annotations

import numpy as np
import paddle
from paddle import nn

# The architecture's settings and engines are plain data (no Paddle), re-exported here.
from .architecture import ENGINES, AmuConfig

__all__ = [
    "ENGINES",
    "AmuConfig",
    "AmuNet",
    "paddle_summary_parameter_count",
    "paper_parameter_count",
    "trainable_parameter_count",
]


class AmuNet(nn.Layer):
    """The AMU classifier: gene-identity embeddings scaled by expression, a post-LN
    transformer encoder, a 1x1 convolution head and a linear read-out to two logits."""

    def __init__(self, config: AmuConfig, engine: str = "eager") -> None:
        super().__init__()
        if engine not in ENGINES:
            raise ValueError(f"AmuNet: engine must be one of {ENGINES}, got {engine!r}")
        self.config = config
        self.engine = engine
        # Gene identity table (G x D); token g = value_g * e_g, no positional encoding (spec 1.3
        # step 2).
        self.gene_embedding = nn.Embedding(config.n_genes, config.d_model)
        # "fused" swaps only the encoder layer's forward (same sublayers, parameters and
        # initialisation; models/amu/fused.py); "eager" is Paddle's own layer.
        layer_class = nn.TransformerEncoderLayer
        if engine == "fused":
            from .fused import FusedEncoderLayer as layer_class
        layer = layer_class(
            d_model=config.d_model,
            nhead=config.n_heads,
            dim_feedforward=config.ffn_dim,
            dropout=config.dropout,
            activation="relu",
            attn_dropout=config.attn_dropout,
            normalize_before=False,  # post-LN, as the original
        )
        # TransformerEncoder deep-copies the layer: 8 layers with separate weights, no final norm.
        # The fused encoder also runs inference as one whole-stack kernel (fused.FusedEncoder).
        encoder_class = nn.TransformerEncoder
        if engine == "fused":
            from .fused import FusedEncoder as encoder_class
        self.encoder = encoder_class(layer, config.n_layers)
        self.conv = nn.Conv1D(config.d_model, config.conv_channels, kernel_size=1, bias_attr=False)
        self.conv_dropout = nn.Dropout(config.head_dropout)
        self.batch_norm = nn.BatchNorm1D(config.conv_channels)  # Paddle momentum 0.9, eps 1e-5
        self.relu = nn.ReLU()
        self.pool_dropout = nn.Dropout(config.head_dropout)
        self.classifier = nn.Linear(config.n_genes, config.n_classes)

    def forward(self, values: paddle.Tensor) -> paddle.Tensor:
        """Logits [B, n_classes] from expression values [B, G] (or the original [B, 1, G])."""
        if values.ndim == 3:
            values = values.squeeze(1)
        if values.ndim != 2 or values.shape[1] != self.config.n_genes:
            raise ValueError(
                f"AmuNet expects values of shape [batch, {self.config.n_genes}], got "
                f"{list(values.shape)}"
            )
        identity = self.gene_embedding(paddle.arange(self.config.n_genes))  # [G, D], rows 0..G-1
        tokens = values.unsqueeze(-1) * identity.unsqueeze(0)  # [B, G, D]
        encoded = self.encoder(tokens)  # [B, G, D]
        channels = self.conv(encoded.transpose([0, 2, 1]))  # [B, C, G]
        channels = self.relu(self.batch_norm(self.conv_dropout(channels)))  # [B, C, G]
        # AdaptiveMaxPool1D(1) over the channel axis of [B, G, C] in the original = max over C.
        per_gene = channels.max(axis=1)  # [B, G]
        return self.classifier(self.pool_dropout(per_gene))  # [B, n_classes]

    def gene_embeddings(self) -> np.ndarray:
        """The learned gene-identity table [G, D] as numpy (for interpretation)."""
        return self.gene_embedding.weight.numpy().copy()


def trainable_parameter_count(net: nn.Layer) -> int:
    """Every parameter that receives a gradient (what the forward pass actually uses)."""
    return int(sum(int(np.prod(p.shape)) for p in net.parameters() if not p.stop_gradient))


def paper_parameter_count(net: nn.Layer) -> int:
    """The convention behind the paper's "83,462 trainable" (160 genes): trainable minus BatchNorm
    affine.

    The paper quotes ``paddle.summary`` of Paddle 2.3.2, which marked a layer non-trainable
    when its *last* registered parameter (BatchNorm's running variance) was non-trainable,
    so the BatchNorm weight and bias were left out (spec 1.4). Paddle 3.x's summary no
    longer does this (see :func:`paddle_summary_parameter_count`). Reported next to the
    true count, never used for anything else.
    """
    affine = sum(
        int(np.prod(p.shape))
        for layer in net.sublayers()
        if isinstance(layer, (nn.BatchNorm, nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D))
        for p in (layer.weight, layer.bias)
        if p is not None and not p.stop_gradient
    )
    return trainable_parameter_count(net) - affine


def paddle_summary_parameter_count(net: nn.Layer, n_inputs: int) -> dict[str, int]:
    """``paddle.summary``'s total and trainable counts (its printed table is discarded)."""
    import contextlib
    import io

    was_training = net.training
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            summary = paddle.summary(net, input_size=(1, n_inputs))
    finally:
        net.train() if was_training else net.eval()
    return {"total": int(summary["total_params"]), "trainable": int(summary["trainable_params"])}
