"""Network shapes, parameter counts (maxout included), batch-norm placement and bad sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components import CNN, MLP, ConvBlockSpec


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_mlp_shapes_and_parameter_count() -> None:
    net = MLP(depth=2, width=100)
    assert net(torch.zeros(5, 1, 28, 28)).shape == (5, 10)
    assert count(net) == (784 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10)


def test_hidden_sizes_override_depth_and_width() -> None:
    net = MLP(hidden_sizes=[64, 32])
    assert [b.layer.out_features for b in net.blocks] == [64, 32]
    assert len(MLP(depth=0).blocks) == 0


@pytest.mark.parametrize("k", [2, 3])
def test_maxout_multiplies_the_layer_parameters_by_k(k: int) -> None:
    net = MLP(depth=1, width=50, activation="maxout", activation_args={"k": k})
    assert net(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert count(net) == k * (784 * 50 + 50) + (50 * 10 + 10)


def test_maxout_cnn_multiplies_channels() -> None:
    plain = CNN(blocks=[ConvBlockSpec(8, pool="max")], head_width=0, batch_norm=False)
    maxout = CNN(
        blocks=[ConvBlockSpec(8, pool="max")],
        head_width=0,
        batch_norm=False,
        activation="maxout",
        activation_args={"k": 3},
    )
    assert maxout.blocks[0].layer.out_channels == 24
    assert count(maxout) - count(plain) == 2 * (8 * 9 + 8)
    assert maxout(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_batch_norm_sits_before_or_after_the_activation() -> None:
    before = MLP(depth=1, width=8, batch_norm=True, activation="relu")
    after = MLP(depth=1, width=8, batch_norm=True, batch_norm_position="after", activation="relu")
    x = torch.randn(64, 1, 28, 28)
    h_before = before.blocks[0].eval()(x.flatten(1))
    assert (h_before >= 0).all()  # ReLU is last: non-negative
    after.train()
    h_after = after.blocks[0](x.flatten(1))
    assert h_after.mean(0).abs().max() < 1e-5  # BatchNorm is last: zero mean per unit in training
    assert before.blocks[0].layer.bias is None  # BN's shift replaces the bias


def test_cnn_default_and_custom_blocks() -> None:
    net = CNN()
    assert net(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    assert isinstance(net.blocks[0].norm, nn.BatchNorm2d) and isinstance(
        net.blocks[-1].norm, nn.BatchNorm1d
    )
    custom = CNN(
        blocks=[ConvBlockSpec(16, kernel_size=5, stride=2, padding=2, dilation=1, pool="avg")],
        head_width=0,
    )
    assert custom.output.in_features == 16 * 7 * 7
    dilated = CNN(
        blocks=[ConvBlockSpec(4, kernel_size=3, padding=0, dilation=2)],
        head_width=0,
        batch_norm=False,
    )
    assert dilated.output.in_features == 4 * 24 * 24


@pytest.mark.parametrize("network", [MLP, CNN])
def test_dropout_is_in_every_hidden_block(network: type[nn.Module]) -> None:
    net = network(dropout=0.3)
    assert all(isinstance(b.drop, nn.Dropout) and b.drop.p == 0.3 for b in net.blocks)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dropout": 1.0},
        {"dropout": -0.1},
        {"width": 0},
        {"hidden_sizes": [16, -4]},
        {"depth": -1},
        {"batch_norm_position": "middle"},
        {"activation": "nope"},
    ],
)
def test_bad_mlp_settings_fail_clearly(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        MLP(**kwargs)


def test_bad_cnn_settings_fail_clearly() -> None:
    with pytest.raises(ConfigError):
        CNN(blocks=[ConvBlockSpec(0)])
    with pytest.raises(ConfigError):
        CNN(blocks=[ConvBlockSpec(8, kernel_size=29, padding=0)])
    with pytest.raises(ConfigError):
        CNN(head_width=-1)


def test_layers_keep_their_bias_unless_batch_norm_follows_them() -> None:
    before = CNN(batch_norm=True, batch_norm_position="before")
    after = CNN(batch_norm=True, batch_norm_position="after")
    assert all(b.layer.bias is None for b in before.blocks)
    assert all(b.layer.bias is not None for b in after.blocks)
    assert all(b.layer.bias is not None for b in CNN(batch_norm=False).blocks)
