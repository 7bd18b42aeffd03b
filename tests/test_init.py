"""Init schemes: the statistics the textbook predicts, zero biases, BatchNorm at 1 and 0, deliberate bad starts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components import MLP
from mnist_lab.models.components.init import INITS


def _std(layer: nn.Linear) -> float:
    return layer.weight.detach().std().item()


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


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
