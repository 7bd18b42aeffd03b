"""Init schemes: the statistics the textbook predicts, zero biases, BatchNorm at 1 and 0."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components import MLP
from mnist_lab.models.components.init import INITS, init_layer


def _std(layer: nn.Linear) -> float:
    return layer.weight.detach().std().item()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_kaiming_normal_std_is_gain_over_sqrt_fan_in() -> None:
    layer = nn.Linear(1000, 500)
    init_layer(layer, "kaiming_normal", "relu")
    assert _std(layer) == pytest.approx(math.sqrt(2) / math.sqrt(1000), rel=0.03)
    init_layer(layer, "kaiming_normal", "leaky_relu", 0.2)
    assert _std(layer) == pytest.approx(math.sqrt(2 / (1 + 0.2**2)) / math.sqrt(1000), rel=0.03)


def test_xavier_uses_fan_in_and_fan_out_and_the_tanh_gain() -> None:
    layer = nn.Linear(600, 200)
    init_layer(layer, "xavier_normal", "tanh")
    assert _std(layer) == pytest.approx(5 / 3 * math.sqrt(2 / (600 + 200)), rel=0.03)
    init_layer(layer, "xavier_uniform", "sigmoid")
    bound = math.sqrt(6 / (600 + 200))
    assert layer.weight.abs().max().item() <= bound
    assert _std(layer) == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_lecun_normal_and_normal_and_uniform() -> None:
    layer = nn.Linear(400, 400)
    init_layer(layer, "lecun_normal", "linear")
    assert _std(layer) == pytest.approx(1 / 20, rel=0.03)
    init_layer(layer, "normal", args={"std": 0.1})
    assert _std(layer) == pytest.approx(0.1, rel=0.03)
    init_layer(layer, "uniform", args={"a": -0.5, "b": 0.5})
    assert layer.weight.min().item() >= -0.5 and layer.weight.max().item() <= 0.5


def test_orthogonal_rows_are_orthonormal() -> None:
    layer = nn.Linear(64, 32)
    init_layer(layer, "orthogonal", "linear")
    w = layer.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-5)


def test_zeros_gives_all_zero_weights_everywhere() -> None:
    net = MLP(depth=2, width=32, weight_init="zeros")
    for module in net.modules():
        if isinstance(module, nn.Linear):
            assert torch.count_nonzero(module.weight) == 0


@pytest.mark.parametrize("scheme", sorted(INITS))
def test_biases_start_at_zero_and_batch_norm_at_one_and_zero(scheme: str) -> None:
    net = MLP(depth=2, width=16, weight_init=scheme, batch_norm=True, batch_norm_position="after")
    for module in net.modules():
        if isinstance(module, nn.Linear) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, nn.BatchNorm1d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))


def test_unknown_init_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="kaiming_normal"):
        MLP(weight_init="he_magic")
    with pytest.raises(ConfigError, match="std"):
        MLP(weight_init="normal", weight_init_args={"sigma": 1.0})
