"""Init schemes: each hidden layer starts with its activation's gain and the output layer with a
linear one, the scheme's arguments reach the weights and are reported with their defaults, biases
start at zero, deliberate bad starts are allowed and bad names fail clearly."""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components import MLP
from mnist_lab.models.components.init import INITS

IN = 28 * 28
calculate_gain = nn.init.calculate_gain


def std(layer: nn.Linear) -> float:
    return layer.weight.detach().std().item()


@pytest.fixture(autouse=True)
def seeded() -> None:
    torch.manual_seed(0)


def test_zeros_gives_all_zero_weights_everywhere() -> None:
    net = MLP(depth=2, width=32, weight_init="zeros")
    layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 3 and all(torch.count_nonzero(m.weight) == 0 for m in layers)


@pytest.mark.parametrize("scheme", sorted(INITS))
def test_biases_start_at_zero_and_the_arguments_used_are_reported(scheme: str) -> None:
    net = MLP(depth=2, width=16, weight_init=scheme, batch_norm=True, batch_norm_position="after")
    biases = [m.bias for m in net.modules() if isinstance(m, nn.Linear) and m.bias is not None]
    assert biases and all(torch.count_nonzero(b) == 0 for b in biases)
    params = inspect.signature(INITS[scheme]).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    assert net.effective_args()["weight_init_args"] == defaults  # a run's params


def test_hidden_layers_get_their_activation_s_gain_and_the_output_layer_a_linear_one() -> None:
    slope, width = 0.5, 512
    leaky = MLP(
        depth=1, width=width, activation="leaky_relu", activation_args={"negative_slope": slope}
    )
    assert std(leaky.blocks[0].layer) == pytest.approx(
        calculate_gain("leaky_relu", slope) / math.sqrt(IN), rel=0.02
    )
    assert std(leaky.output) == pytest.approx(1 / math.sqrt(width), rel=0.06)  # kaiming, linear
    tanh = MLP(depth=1, width=width, activation="tanh", weight_init="xavier_normal")
    xavier = calculate_gain("tanh") * math.sqrt(2 / (IN + width))
    assert std(tanh.blocks[0].layer) == pytest.approx(xavier, rel=0.02)


def test_the_init_s_arguments_reach_the_weights() -> None:
    width = 256
    normal = MLP(depth=1, width=width, weight_init="normal", weight_init_args={"std": 0.5})
    assert std(normal.blocks[0].layer) == pytest.approx(0.5, rel=0.02)
    fan_out = MLP(
        depth=1, width=width, weight_init="kaiming_normal", weight_init_args={"mode": "fan_out"}
    )
    expected = calculate_gain("relu") / math.sqrt(width)  # the hidden layer's fan-out
    assert std(fan_out.blocks[0].layer) == pytest.approx(expected, rel=0.02)


def test_an_unknown_init_or_argument_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=re.escape(f"choose one of: {', '.join(INITS)}")):
        MLP(weight_init="he_magic")
    with pytest.raises(ConfigError, match=r"takes no argument \['sigma'\]; it takes: std"):
        MLP(weight_init="normal", weight_init_args={"sigma": 1.0})


@pytest.mark.parametrize(
    "args",
    [
        {"weight_init": "normal", "weight_init_args": {"std": -1.0}},
        {"weight_init": "uniform", "weight_init_args": {"a": 1.0, "b": -1.0}},
        {"weight_init": "kaiming_normal", "weight_init_args": {"mode": "fan_middle"}},
    ],
)
def test_values_the_init_rejects_are_a_config_error(args: dict) -> None:
    """Not torch's RuntimeError or ValueError, a traceback from the CLI."""
    with pytest.raises(ConfigError, match=f"init '{args['weight_init']}' rejects"):
        MLP(depth=1, width=8, **args)
