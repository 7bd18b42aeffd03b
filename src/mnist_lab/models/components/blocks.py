"""The hidden block both networks are built from: weight layer, norm, activation, pool, dropout.

One block type means one place that decides where batch norm sits (before the activation, the
usual choice, or after it) and one structure the diagnostics can walk (:class:`BlockNetwork`):
``block.layer`` holds the weights, ``block.act`` produces the unit outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import Activation, ActivationLike, resolve_activation
from mnist_lab.models.components.init import check_init, init_layer

NormPosition = Literal["before", "after"]


class Block(Protocol):
    """A hidden block as the diagnostics see it: ``layer`` holds the weights, ``act`` emits the units."""

    layer: nn.Module
    act: nn.Module


@runtime_checkable
class BlockNetwork(Protocol):
    """A network the diagnostics understand: hidden ``blocks`` (input side first), then the ``output`` layer.

    :class:`MLP` and :class:`CNN` are ones; any ``nn.Module`` with these two attributes is too.
    """

    blocks: Sequence[Block]
    output: nn.Module

    def __call__(self, x: Tensor) -> Tensor: ...


def check_dropout(p: float) -> None:
    """Dropout must keep something: p in [0, 1)."""
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {p}")


def check_positive(name: str, values: int | list[int] | tuple[int, ...]) -> None:
    """Layer sizes must be positive integers."""
    items = values if isinstance(values, (list, tuple)) else [values]
    if any(int(v) <= 0 for v in items):
        raise ConfigError(f"{name} must be positive, got {values}")


def check_finite(name: str, value: float) -> float:
    """A number the init can use: finite (``output_gain=inf`` would start the run at NaN)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    return number


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
    blocks: nn.ModuleList,
    output: nn.Module,
    scheme: str,
    scheme_args: Mapping[str, Any] | None,
    activation: Activation,
    output_gain: float = 1.0,
    bias_init: float = 0.0,
) -> None:
    """Init every hidden layer for its activation's gain and the output layer as linear.

    Then the deliberate bad starts the textbook warns about: ``output_gain`` scales the output layer's
    weights (20: logits large enough to saturate a sigmoid or softmax), ``bias_init`` is every hidden
    block's shift before its activation (-1: ReLU units that start dead). That shift is the layer's
    bias, or, when batch norm before the activation replaces the bias, the norm's own shift.
    """
    for block in blocks:
        init_layer(block.layer, scheme, activation.nonlinearity, activation.param, scheme_args)
        if isinstance(block.norm, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(block.norm.weight)
            nn.init.zeros_(block.norm.bias)
        if bias_init:
            shift = getattr(block.layer, "bias", None)
            if shift is None and block.norm_position == "before" and hasattr(block.norm, "bias"):
                shift = block.norm.bias
            if shift is not None:
                nn.init.constant_(shift, bias_init)
    init_layer(output, scheme, "linear", None, scheme_args)
    if output_gain != 1.0:
        with torch.no_grad():
            output.weight.mul_(output_gain)
