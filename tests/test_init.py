"""Init schemes: the statistics the textbook predicts, zero biases, BatchNorm at 1 and 0, deliberate bad starts."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from mnist_lab.diagnostics import activation_stats
from mnist_lab.errors import ConfigError
from mnist_lab.models.components import CNN, MLP
from mnist_lab.models.components.init import INITS, init_layer
from mnist_lab.models.mnist_module import MNISTClassifier


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


@pytest.mark.parametrize("network", [MLP, CNN])
def test_output_gain_scales_the_output_weights_and_nothing_else(network: type[nn.Module]) -> None:
    torch.manual_seed(1)
    plain = network(batch_norm=False)
    torch.manual_seed(1)
    gained = network(batch_norm=False, output_gain=20.0)
    torch.testing.assert_close(gained.output.weight, 20 * plain.output.weight)
    assert torch.count_nonzero(gained.output.bias) == 0
    for a, b in zip(plain.blocks, gained.blocks, strict=True):
        assert torch.equal(a.layer.weight, b.layer.weight)
    x = torch.randn(64, 1, 28, 28)
    assert (torch.sigmoid(gained(x)) - 0.5).abs().gt(0.49).float().mean() > 0.5  # most outputs start saturated
    assert (torch.sigmoid(plain(x)) - 0.5).abs().gt(0.49).float().mean() < 0.2


def test_bias_init_shifts_every_hidden_layer_or_its_batch_norm_and_kills_relus() -> None:
    net = MLP(depth=2, width=16, bias_init=-1.0)
    assert all(torch.equal(b.layer.bias, torch.full((16,), -1.0)) for b in net.blocks)
    assert torch.count_nonzero(net.output.bias) == 0  # the output layer is not a hidden layer
    normed = MLP(depth=1, width=16, bias_init=-1.0, batch_norm=True)  # BN before: no bias, its shift instead
    assert normed.blocks[0].layer.bias is None and torch.equal(normed.blocks[0].norm.bias, torch.full((16,), -1.0))
    after = MLP(depth=1, width=16, bias_init=-1.0, batch_norm=True, batch_norm_position="after")
    assert torch.equal(after.blocks[0].layer.bias, torch.full((16,), -1.0))
    assert torch.count_nonzero(after.blocks[0].norm.bias) == 0
    conv = CNN(bias_init=-1.0)
    assert all(torch.equal(b.norm.bias, torch.full_like(b.norm.bias, -1.0)) for b in conv.blocks)
    x = torch.randn(256, 1, 28, 28)
    dead = [activation_stats(MLP(depth=1, width=64, bias_init=b), x)[0].dead_frac for b in (0.0, -10.0)]
    assert dead == [0.0, 1.0]


@pytest.mark.parametrize("option", ["output_gain", "bias_init"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), "big"])
def test_bad_starts_must_be_finite_numbers(option: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"{option} must be a"):
        MLP(**{option: value})
    with pytest.raises(ConfigError, match=f"{option} must be a"):
        CNN(**{option: value})


def test_a_checkpoint_rebuilds_the_bad_start(tmp_path: Path) -> None:
    model = MNISTClassifier(MLP(depth=1, width=8, output_gain=20.0, bias_init=-1.0))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    net_args = torch.load(tmp_path / "m.ckpt", weights_only=True)["hyper_parameters"]["net"]["init_args"]
    assert (net_args["output_gain"], net_args["bias_init"]) == (20.0, -1.0)
    loaded = MNISTClassifier.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    rebuilt = loaded.net.init_config["init_args"]
    assert (rebuilt["output_gain"], rebuilt["bias_init"]) == (20.0, -1.0)
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x), rtol=0, atol=0)
