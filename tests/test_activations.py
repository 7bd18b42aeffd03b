"""The activation registry: every name builds, parameters reach the module, bad names fail clearly."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import ACTIVATIONS, Maxout, gain_for, make_activation

EXPECTED = {
    "identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu",
    "relu6", "softplus", "maxout", "gelu", "silu", "mish", "selu",
}  # fmt: skip


def test_registry_has_every_documented_activation() -> None:
    assert set(ACTIVATIONS) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_activation_builds_and_keeps_shape(name: str) -> None:
    act = make_activation(name, 8)
    x = torch.randn(4, 8 * (2 if name == "maxout" else 1))
    assert act(x).shape == (4, 8)


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        make_activation("swishy", 4)
    assert "swishy" in str(err.value)
    for name in EXPECTED:
        assert name in str(err.value)


def test_unknown_argument_is_rejected_with_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="negative_slope"):
        make_activation("leaky_relu", 4, {"slope": 0.1})


def test_parameters_reach_the_module() -> None:
    leaky = make_activation("leaky_relu", 4, {"negative_slope": 0.2})
    assert leaky(torch.tensor([-1.0])).item() == pytest.approx(-0.2)
    assert make_activation("leaky_relu", 4)(torch.tensor([-1.0])).item() == pytest.approx(-0.01)
    elu = make_activation("elu", 4, {"alpha": 2.0})
    assert elu(torch.tensor([-100.0])).item() == pytest.approx(-2.0)
    softplus = make_activation("softplus", 4, {"beta": 2.0})
    x = torch.tensor([0.3])
    assert softplus(x).item() == pytest.approx((torch.log1p(torch.exp(2 * x)) / 2).item())


def test_prelu_is_learned_shared_or_per_channel() -> None:
    shared = make_activation("prelu", 16)
    per_channel = make_activation("prelu", 16, {"per_channel": True, "init": 0.1})
    assert isinstance(shared, nn.PReLU) and shared.weight.numel() == 1
    assert shared.weight.item() == pytest.approx(0.25)
    assert per_channel.weight.numel() == 16 and torch.allclose(per_channel.weight, torch.full((16,), 0.1))
    assert shared.weight.requires_grad


def test_step_is_heaviside_with_zero_gradient() -> None:
    x = torch.tensor([-1.0, 0.5, 2.0], requires_grad=True)
    y = make_activation("step", 3)(x)
    assert y.tolist() == [0.0, 1.0, 1.0]
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros(3))


def test_maxout_takes_the_max_of_k_pieces() -> None:
    m = Maxout(k=3)
    x = torch.tensor([[1.0, 5.0, 2.0, -1.0, -3.0, -2.0]])
    assert m(x).tolist() == [[5.0, -1.0]]


def test_gains_follow_the_activation() -> None:
    assert gain_for("relu") == ("relu", None)
    assert gain_for("leaky_relu", {"negative_slope": 0.2}) == ("leaky_relu", 0.2)
    assert gain_for("leaky_relu") == ("leaky_relu", 0.01)
    assert gain_for("prelu") == ("leaky_relu", 0.25)
    assert gain_for("tanh")[0] == "tanh"
