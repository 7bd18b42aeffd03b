"""A plain multi-layer perceptron for 28x28 digits, with pluggable activation, init, dropout and
norm."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import ActivationLike, resolve_activation
from mnist_lab.models.components.blocks import HiddenBlock, Network, NormPosition
from mnist_lab.models.components.init import init_weights


class MLP(Network):
    """``flatten -> HiddenBlock x len(hidden_sizes) -> Linear(num_classes)``, returning logits.

    Args:
        depth, width: ``depth`` hidden layers of ``width`` units each (depth 0: logistic
            regression).
        hidden_sizes: explicit units per hidden layer, input side first; replaces depth and width.
        activation: a name from the activation registry, an ``nn.Module`` class or its import path
            (``torch.nn.Hardswish``); ``activation_args`` its parameters (``{negative_slope: 0.1}``,
            ``{k: 3}`` for maxout, ``{per_channel: true}`` for prelu).
        weight_init: a name from the init registry; ``weight_init_args`` its parameters
            (``{std: 0.1}``).
        dropout: drop probability after each hidden block, in [0, 1).
        batch_norm: add BatchNorm1d to each hidden block, ``batch_norm_position`` the activation.
    """

    def __init__(
        self,
        depth: int = 2,
        width: int = 512,
        hidden_sizes: list[int] | None = None,
        activation: ActivationLike = "relu",
        activation_args: dict[str, Any] | None = None,
        weight_init: str = "kaiming_normal",
        weight_init_args: dict[str, Any] | None = None,
        dropout: float = 0.0,
        batch_norm: bool = False,
        batch_norm_position: NormPosition = "before",
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        act = resolve_activation(activation, activation_args)
        if hidden_sizes is None:
            if depth < 0 or width <= 0:
                raise ConfigError(
                    f"depth must be >= 0 and width must be positive, got {depth} and {width}"
                )
            hidden_sizes = [width] * depth
        if min([*hidden_sizes, num_classes]) <= 0:
            raise ConfigError(
                "hidden_sizes and num_classes must be positive, "
                f"got {hidden_sizes} and {num_classes}"
            )
        in_features = math.prod(input_shape)
        self.blocks = nn.ModuleList()
        for width in hidden_sizes:
            layer = partial(nn.Linear, in_features)
            self.blocks.append(
                HiddenBlock(layer, width, act, batch_norm, batch_norm_position, dropout)
            )
            in_features = width
        self.output = nn.Linear(in_features, num_classes)
        self.act = act
        self.init_args = init_weights(self, weight_init, weight_init_args, act)
