"""A plain multi-layer perceptron for 28x28 digits, with pluggable activation, init, dropout and norm."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import ActivationLike
from mnist_lab.models.components.blocks import (
    HiddenBlock,
    NormPosition,
    check_network_options,
    check_positive,
    initialise,
    norm_width,
)


class MLP(nn.Module):
    """``flatten -> HiddenBlock x len(hidden_sizes) -> Linear(num_classes)``, returning logits.

    Args:
        depth, width: ``depth`` hidden layers of ``width`` units each (depth 0: logistic regression).
        hidden_sizes: explicit units per hidden layer, input side first; replaces depth and width.
        activation: a name from the activation registry, an ``nn.Module`` class or its import path
            (``torch.nn.Hardswish``); ``activation_args`` its parameters (``{negative_slope: 0.1}``,
            ``{k: 3}`` for maxout, ``{per_channel: true}`` for prelu).
        weight_init: a name from the init registry; ``weight_init_args`` its parameters (``{std: 0.1}``).
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
        act = check_network_options(activation, activation_args, weight_init, weight_init_args, dropout, num_classes)
        if hidden_sizes is None:
            check_positive("width", width)
            if depth < 0:
                raise ConfigError(f"depth must be >= 0, got {depth}")
            hidden_sizes = [width] * depth
        check_positive("hidden_sizes", list(hidden_sizes))
        self.flatten = nn.Flatten()
        in_features = input_shape[0] * input_shape[1] * input_shape[2]
        self.blocks = nn.ModuleList()
        for width in hidden_sizes:
            out = width * act.pieces
            self.blocks.append(
                HiddenBlock(
                    nn.Linear(in_features, out, bias=not (batch_norm and batch_norm_position == "before")),
                    width,
                    activation=act,
                    norm=nn.BatchNorm1d(norm_width(width, act, batch_norm_position)) if batch_norm else None,
                    norm_position=batch_norm_position,
                    dropout=nn.Dropout(dropout) if dropout > 0 else None,
                )
            )
            in_features = width
        self.output = nn.Linear(in_features, num_classes)
        initialise(self.blocks, self.output, weight_init, weight_init_args, act)

    def forward(self, x: Tensor) -> Tensor:
        h = self.flatten(x)
        for block in self.blocks:
            h = block(h)
        return self.output(h)
