"""The activation registry and its value object: every name builds and knows the arguments it
runs with, parameters reach the module and the gain, classes are accepted, bad names fail
clearly."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components import MLP
from mnist_lab.models.components.activations import (
    ACTIVATIONS,
    Activation,
    Maxout,
    resolve_activation,
)


def make_activation(name: str, num_features: int, args: dict | None = None) -> nn.Module:
    return resolve_activation(name, args)(num_features)


def defaults(name: str) -> dict:
    """The factory's own defaults: what a run's params say when no argument is given."""
    params = inspect.signature(ACTIVATIONS[name].factory).parameters.values()
    return {p.name: p.default for p in params if p.default is not p.empty and p.name != "inplace"}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_each_activation_builds_keeps_shape_and_knows_its_arguments(name: str) -> None:
    resolved = resolve_activation(name)
    x = torch.randn(4, 8 * resolved.pieces)
    assert resolved(8)(x).shape == (4, 8)
    assert resolved.every == defaults(name)  # every argument it runs with, defaults included


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ConfigError) as err:
        make_activation("swishy", 4)
    assert "swishy" in str(err.value)
    for name in ACTIVATIONS:
        assert name in str(err.value)


def test_unknown_argument_is_rejected_with_the_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="negative_slope"):
        make_activation("leaky_relu", 4, {"slope": 0.1})


def test_a_value_of_the_wrong_kind_is_rejected_before_any_layer_exists() -> None:
    for name, args, kind in [
        ("maxout", {"k": 2.5}, "k must be an integer"),  # else a TypeError at the first forward
        ("prelu", {"per_channel": 1}, "per_channel must be true or false"),
        ("leaky_relu", {"negative_slope": "abc"}, "negative_slope must be a number"),
        ("leaky_relu", {"negative_slope": True}, "negative_slope must be a number"),
    ]:
        with pytest.raises(ConfigError, match=kind):
            resolve_activation(name, args)
    assert resolve_activation("leaky_relu", {"negative_slope": 1}).param == 1  # an int is a number


def test_parameters_reach_the_module() -> None:
    leaky = make_activation("leaky_relu", 4, {"negative_slope": 0.2})
    assert leaky(torch.tensor([-1.0])).item() == pytest.approx(-0.2)
    assert resolve_activation("leaky_relu", {"negative_slope": 0.2}).every == {
        "negative_slope": 0.2
    }
    elu = make_activation("elu", 4, {"alpha": 2.0})
    assert elu(torch.tensor([-100.0])).item() == pytest.approx(-2.0)
    softplus = make_activation("softplus", 4, {"beta": 2.0})
    x = torch.tensor([0.3])
    assert softplus(x).item() == pytest.approx((torch.log1p(torch.exp(2 * x)) / 2).item())


def test_prelu_is_learned_shared_or_per_channel() -> None:
    shared = make_activation("prelu", 16)
    per_channel = make_activation("prelu", 16, {"per_channel": True, "init": 0.1})
    assert isinstance(shared, nn.PReLU) and shared.weight.numel() == 1
    assert shared.weight.item() == pytest.approx(defaults("prelu")["init"])
    assert per_channel.weight.numel() == 16 and torch.allclose(
        per_channel.weight, torch.full((16,), 0.1)
    )
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


def test_gains_and_pieces_follow_the_activation() -> None:
    def gain(name: str, args: dict | None = None) -> tuple[str, float | None]:
        resolved = resolve_activation(name, args)
        return resolved.nonlinearity, resolved.param

    assert gain("relu") == ("relu", None)
    assert gain("leaky_relu", {"negative_slope": 0.2}) == ("leaky_relu", 0.2)
    assert gain("leaky_relu") == ("leaky_relu", defaults("leaky_relu")["negative_slope"])
    assert gain("prelu") == ("leaky_relu", defaults("prelu")["init"])  # learned, from its start
    assert gain("prelu", {"init": 0.1}) == ("leaky_relu", 0.1)
    assert resolve_activation("maxout").pieces == defaults("maxout")["k"]
    assert resolve_activation("maxout", {"k": 3}).pieces == 3
    assert resolve_activation("relu").pieces == 1


def test_a_class_or_its_import_path_is_accepted_like_a_name() -> None:
    assert resolve_activation(nn.Tanh).name == "tanh"  # a registered class keeps its gain
    assert resolve_activation(nn.LeakyReLU, {"negative_slope": 0.2}).param == 0.2
    hardswish = resolve_activation("torch.nn.Hardswish")
    assert hardswish == resolve_activation(nn.Hardswish)
    assert (hardswish.name, hardswish.nonlinearity, hardswish.pieces) == (
        "torch.nn.modules.activation.Hardswish",
        "linear",
        1,
    )
    assert isinstance(hardswish(4), nn.Hardswish)
    net = MLP(depth=1, width=8, activation=nn.Hardswish)
    assert isinstance(net.blocks[0].act, nn.Hardswish)
    assert resolve_activation(hardswish) is hardswish
    assert isinstance(hardswish, Activation)


def test_a_bad_class_or_path_fails_clearly() -> None:
    with pytest.raises(ConfigError, match="not an importable nn.Module"):
        resolve_activation("torch.nn.NoSuchThing")
    with pytest.raises(ConfigError, match="not an importable nn.Module"):
        resolve_activation("torch.zeros")
    with pytest.raises(ConfigError, match="takes no argument"):
        resolve_activation(nn.Hardswish, {"slope": 1})
