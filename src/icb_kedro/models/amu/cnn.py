"""The AMU paper's small CNN baseline (spec 1.7) in Paddle (its scikit-learn wrapper:
``estimators.AmuCnnClassifier``).

Shapes (G genes, 160 in the paper):

    x [B, G] -> [B, 1, G] --Conv1D 1->10, k1--> ReLU --BN(10)-->
      --Conv1D 10->10, k2 s2--> [B, 10, G1]
      --BN(10) (the same module, as the original)--> ReLU --Conv1D 10->5, k2 s2--> [B, 5, G2]
      --BN(5)--> ReLU --transpose, flatten--> [B, 5*G2] --Linear--> 2 logits

with G1 = floor((G - 2) / 2) + 1 and G2 = floor((G1 - 2) / 2) + 1 (G2 = 40 for 160 genes).
767 trainable parameters for 160 genes; the paper's "737" leaves out the BatchNorm affine
weights (spec 1.4). Differences from the original: logits out, cross-entropy on logits
(spec 3.5); the unused dropout and pooling layers are not built (dead modules).
"""

from __future__ import annotations

from dataclasses import dataclass

import paddle
from paddle import nn


def _strided_length(length: int) -> int:
    """Output length of a kernel-2, stride-2 Conv1D without padding."""
    return (length - 2) // 2 + 1


@dataclass(frozen=True)
class CnnConfig:
    """Architecture of the small CNN (defaults = the paper's baseline)."""

    n_genes: int = 160
    hidden_channels: int = 10
    out_channels: int = 5
    # The original applies one BatchNorm1D(10) after conv1 *and* after conv2 (shared weights
    # and running statistics). Kept for fidelity (and the 767/737 counts); False gives each
    # position its own BatchNorm.
    shared_batch_norm: bool = True
    n_classes: int = 2

    def __post_init__(self) -> None:
        if self.n_genes < 4:
            raise ValueError(
                f"CnnConfig.n_genes must be >= 4 (two stride-2 convolutions), got {self.n_genes}"
            )

    @property
    def flat_features(self) -> int:
        return self.out_channels * _strided_length(_strided_length(self.n_genes))


class AmuCnn(nn.Layer):
    """Three Conv1D layers and a linear read-out to two logits."""

    def __init__(self, config: CnnConfig) -> None:
        super().__init__()
        self.config = config
        self.conv1 = nn.Conv1D(1, config.hidden_channels, kernel_size=1)
        self.norm1 = nn.BatchNorm1D(config.hidden_channels)
        self.conv2 = nn.Conv1D(
            config.hidden_channels, config.hidden_channels, kernel_size=2, stride=2
        )
        self.norm2 = None if config.shared_batch_norm else nn.BatchNorm1D(config.hidden_channels)
        self.conv3 = nn.Conv1D(config.hidden_channels, config.out_channels, kernel_size=2, stride=2)
        self.norm3 = nn.BatchNorm1D(config.out_channels)
        self.relu = nn.ReLU()
        self.classifier = nn.Linear(config.flat_features, config.n_classes)

    def forward(self, values: paddle.Tensor) -> paddle.Tensor:
        """Logits [B, n_classes] from values [B, G] (or [B, 1, G])."""
        if values.ndim == 2:
            values = values.unsqueeze(1)  # [B, 1, G]
        if values.ndim != 3 or values.shape[1:] != [1, self.config.n_genes]:
            raise ValueError(
                f"AmuCnn expects values of shape [batch, {self.config.n_genes}], got "
                f"{list(values.shape)}"
            )
        hidden = self.norm1(self.relu(self.conv1(values)))  # [B, 10, G]
        norm2 = self.norm1 if self.norm2 is None else self.norm2
        hidden = self.relu(norm2(self.conv2(hidden)))  # [B, 10, G1]
        hidden = self.relu(self.norm3(self.conv3(hidden)))  # [B, 5, G2]
        flat = hidden.transpose([0, 2, 1]).flatten(1)  # [B, G2 * 5], position-major as the original
        return self.classifier(flat)
