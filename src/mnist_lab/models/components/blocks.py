"""The hidden block both networks are built from: weight layer, norm, activation, pool, dropout.

One block type means one place that decides where batch norm sits (before the activation, the
usual choice, or after it): ``block.layer`` holds the weights, ``block.act`` produces the units.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from torch import Tensor, nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import Activation, ActivationLike, resolve_activation
from mnist_lab.models.components.init import check_init, init_layer

NormPosition = Literal["before", "after"]


def check_dropout(p: float) -> None:
    """Dropout must keep something: p in [0, 1)."""
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {p}")


def check_positive(name: str, values: int | list[int] | tuple[int, ...]) -> None:
    """Layer sizes must be positive integers."""
    items = values if isinstance(values, (list, tuple)) else [values]
    if any(int(v) <= 0 for v in items):
        raise ConfigError(f"{name} must be positive, got {values}")


def check_network_options(
    activation: ActivationLike,
    activation_args: Mapping[str, Any] | None,
    weight_init: str,
    weight_init_args: Mapping[str, Any] | None,
    dropout: float,
    num_classes: int,
) -> Activation:
    """The checks every network runs before building anything, so bad input fails before training.

    Returns the activation, resolved once for every block and the init.
    """
    act = resolve_activation(activation, activation_args)
    check_init(weight_init, weight_init_args)
    check_dropout(dropout)
    check_positive("num_classes", num_classes)
    return act


class HiddenBlock(nn.Module):
    """``layer -> [norm] -> act -> [norm] -> [pool] -> [dropout]``, norm placed by ``norm_position``."""

    def __init__(
        self,
        layer: nn.Module,
        width: int,
        *,
        activation: Activation,
        norm: nn.Module | None,
        norm_position: NormPosition,
        dropout: nn.Module | None,
        pool: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if norm_position not in ("before", "after"):
            raise ConfigError(f"batch_norm_position must be 'before' or 'after', got {norm_position!r}")
        self.layer = layer
        self.norm_position = norm_position
        self.norm = norm if norm is not None else nn.Identity()
        self.act = activation(width)
        self.pool = pool if pool is not None else nn.Identity()
        self.drop = dropout if dropout is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        z = self.layer(x)
        if self.norm_position == "before":
            z = self.norm(z)
        a = self.act(z)
        if self.norm_position == "after":
            a = self.norm(a)
        return self.drop(self.pool(a))


def norm_width(width: int, activation: Activation, position: str) -> int:
    """Batch norm sees the layer's output before the activation (maxout: k x), the activation's output after."""
    return width * activation.pieces if position == "before" else width


def initialise(
    blocks: nn.ModuleList, output: nn.Module, scheme: str, scheme_args: Mapping[str, Any] | None, activation: Activation
) -> None:
    """Init every hidden layer for its activation's gain, the output layer as linear, batch norm at (1, 0)."""
    for block in blocks:
        init_layer(block.layer, scheme, activation.nonlinearity, activation.param, scheme_args)
        if isinstance(block.norm, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(block.norm.weight)
            nn.init.zeros_(block.norm.bias)
    init_layer(output, scheme, "linear", None, scheme_args)
