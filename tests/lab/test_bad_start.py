"""The study's bad starts (lab.nets): output_gain scales the output layer, bias_init shifts the
hidden ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lab.diagnostics.probes import activation_stats
from lab.nets import BadStartCNN, BadStartMLP

from mnist_lab.errors import ConfigError
from mnist_lab.models.components import CNN, MLP


@pytest.mark.parametrize("network", [BadStartMLP, BadStartCNN])
def test_output_gain_scales_the_output_weights_and_nothing_else(network: type[nn.Module]) -> None:
    torch.manual_seed(1)
    plain = {BadStartMLP: MLP, BadStartCNN: CNN}[network](batch_norm=False)
    torch.manual_seed(1)
    gained = network(batch_norm=False, output_gain=20.0)
    torch.testing.assert_close(gained.output.weight, 20 * plain.output.weight)
    assert torch.count_nonzero(gained.output.bias) == 0
    for a, b in zip(plain.blocks, gained.blocks, strict=True):
        assert torch.equal(a.layer.weight, b.layer.weight)
    x = torch.randn(64, 1, 28, 28)
    # most outputs start saturated
    assert (torch.sigmoid(gained(x)) - 0.5).abs().gt(0.49).float().mean() > 0.5
    assert (torch.sigmoid(plain(x)) - 0.5).abs().gt(0.49).float().mean() < 0.2


def test_bias_init_shifts_every_hidden_layer_or_its_batch_norm_and_kills_relus() -> None:
    net = BadStartMLP(depth=2, width=16, bias_init=-1.0)
    assert all(torch.equal(b.layer.bias, torch.full((16,), -1.0)) for b in net.blocks)
    assert torch.count_nonzero(net.output.bias) == 0  # the output layer is not a hidden layer
    # BN before: no bias, its shift instead
    normed = BadStartMLP(depth=1, width=16, bias_init=-1.0, batch_norm=True)
    assert normed.blocks[0].layer.bias is None and torch.equal(
        normed.blocks[0].norm.bias, torch.full((16,), -1.0)
    )
    after = BadStartMLP(
        depth=1, width=16, bias_init=-1.0, batch_norm=True, batch_norm_position="after"
    )
    assert torch.equal(after.blocks[0].layer.bias, torch.full((16,), -1.0))
    assert torch.count_nonzero(after.blocks[0].norm.bias) == 0
    conv = BadStartCNN(bias_init=-1.0)
    assert all(torch.equal(b.norm.bias, torch.full_like(b.norm.bias, -1.0)) for b in conv.blocks)
    x = torch.randn(256, 1, 28, 28)
    dead = [
        activation_stats(BadStartMLP(depth=1, width=64, bias_init=b), x)[0].dead_frac
        for b in (0.0, -10.0)
    ]
    assert dead == [0.0, 1.0]


@pytest.mark.parametrize("option", ["output_gain", "bias_init"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), "big"])
def test_bad_starts_must_be_finite_numbers(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{option} must be a"):
        BadStartMLP(**{option: value})
    with pytest.raises(ConfigError, match=f"{option} must be a"):
        BadStartCNN(**{option: value})
