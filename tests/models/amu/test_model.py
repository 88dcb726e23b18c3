"""AMU and CNN networks: shapes, parameter counts (true and the paper's), no dead parameters."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from icb_kedro.models.amu.cnn import AmuCnn, CnnConfig
from icb_kedro.models.amu.model import (
    AmuConfig,
    AmuNet,
    paddle_summary_parameter_count,
    paper_parameter_count,
    trainable_parameter_count,
)


def test_amu_parameter_count_160_genes_true_and_paper() -> None:
    paddle.seed(0)
    net = AmuNet(AmuConfig(n_genes=160))
    # embedding 3,200 + 8 x 9,980 encoder + conv 100 + BN affine 10 + linear 322 (spec 1.4)
    assert trainable_parameter_count(net) == 83_472
    # The paper's "83,462" = Paddle 2.3.2's summary, which left out the BatchNorm affine weights.
    assert paper_parameter_count(net) == 83_462
    # Paddle 3.3's summary counts them (and lists the BN running stats as non-trainable).
    assert paddle_summary_parameter_count(net, 160) == {"total": 83_482, "trainable": 83_472}


def test_cnn_parameter_count_true_and_paper() -> None:
    net = AmuCnn(CnnConfig(n_genes=160))
    assert trainable_parameter_count(net) == 767
    assert paper_parameter_count(net) == 737
    unshared = AmuCnn(CnnConfig(n_genes=160, shared_batch_norm=False))
    assert trainable_parameter_count(unshared) == 787  # one more BatchNorm1D(10)


@pytest.mark.parametrize("n_genes", [160, 78])
def test_amu_forward_shapes(n_genes: int) -> None:
    paddle.seed(0)
    net = AmuNet(AmuConfig(n_genes=n_genes, n_layers=1))
    net.eval()
    values = paddle.randn([3, n_genes])
    assert net(values).shape == [3, 2]
    assert net(values.unsqueeze(1)).shape == [3, 2]  # the original's [B, 1, G] input
    np.testing.assert_allclose(net(values).numpy(), net(values.unsqueeze(1)).numpy())
    assert net.gene_embeddings().shape == (n_genes, 20)


@pytest.mark.parametrize("n_genes", [160, 78, 7])
def test_cnn_forward_shapes(n_genes: int) -> None:
    net = AmuCnn(CnnConfig(n_genes=n_genes))
    net.eval()
    assert net(paddle.randn([4, n_genes])).shape == [4, 2]


def test_every_trainable_parameter_gets_a_gradient() -> None:
    """No dead parameters (spec 3.5: the original had an unused embedding and BatchNorm1D(1))."""
    paddle.seed(0)
    for net, n_genes in (
        (AmuNet(AmuConfig(n_genes=10, n_layers=2)), 10),
        (AmuCnn(CnnConfig(n_genes=10)), 10),
    ):
        net.train()
        loss = paddle.nn.functional.cross_entropy(
            net(paddle.randn([8, n_genes])), paddle.to_tensor([0, 1] * 4)
        )
        loss.backward()
        dead = [
            name
            for name, p in net.named_parameters()
            if not p.stop_gradient and (p.grad is None or not p.grad.abs().sum())
        ]
        assert dead == []


def test_amu_outputs_logits_not_probabilities() -> None:
    paddle.seed(1)
    net = AmuNet(AmuConfig(n_genes=20, n_layers=1))
    net.eval()
    logits = net(paddle.randn([16, 20]) * 5).numpy()
    assert not np.allclose(logits.sum(axis=1), 1.0)  # a softmax output would sum to 1


def test_bad_configurations_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="not divisible"):
        AmuConfig(n_heads=8)  # the paper's 8 heads cannot divide d_model 20
    with pytest.raises(ValueError, match="n_genes"):
        AmuConfig(n_genes=0)
    net = AmuNet(AmuConfig(n_genes=12, n_layers=1))
    with pytest.raises(ValueError, match=r"\[batch, 12\]"):
        net(paddle.randn([2, 13]))
    with pytest.raises(ValueError, match=r"\[batch, 12\]"):
        AmuCnn(CnnConfig(n_genes=12))(paddle.randn([2, 11]))
