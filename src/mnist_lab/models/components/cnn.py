"""A plain convolutional network for 28x28 digits: conv blocks, then a dense head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import ActivationLike, lookup, resolve_activation
from mnist_lab.models.components.blocks import HiddenBlock, Network, NormPosition
from mnist_lab.models.components.init import init_weights

POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d, "none": nn.Identity}


@dataclass
class ConvBlockSpec:
    """One convolution block; ``pool`` runs after the activation (``none`` for no pooling)."""

    channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1
    dilation: int = 1
    pool: Literal["max", "avg", "none"] = "none"
    pool_size: int = 2


DEFAULT_BLOCKS = (
    ConvBlockSpec(32),
    ConvBlockSpec(32, pool="max"),
    ConvBlockSpec(64),
    ConvBlockSpec(64, pool="max"),
)


class CNN(Network):
    """``ConvBlock x len(blocks) -> flatten -> [dense HiddenBlock] -> Linear(num_classes)``.

    Activation, init, dropout and batch norm mean the same as in :class:`MLP`; batch norm is
    BatchNorm2d in the conv blocks and BatchNorm1d in the head. ``head_width=0`` drops the dense
    hidden layer.
    """

    def __init__(
        self,
        blocks: list[ConvBlockSpec] | None = None,  # dicts of ConvBlockSpec's fields work too
        head_width: int = 256,
        activation: ActivationLike = "relu",
        activation_args: dict[str, Any] | None = None,
        weight_init: str = "kaiming_normal",
        weight_init_args: dict[str, Any] | None = None,
        dropout: float = 0.0,
        batch_norm: bool = True,
        batch_norm_position: NormPosition = "before",
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        specs = [
            ConvBlockSpec(**b) if isinstance(b, Mapping) else b for b in blocks or DEFAULT_BLOCKS
        ]
        act = resolve_activation(activation, activation_args)
        if head_width < 0 or num_classes <= 0:
            raise ConfigError(
                f"need head_width >= 0 and num_classes > 0, got {head_width} and {num_classes}"
            )
        self.blocks = nn.ModuleList()
        in_channels = input_shape[0]
        for s in specs:
            if min(s.channels, s.kernel_size, s.stride, s.dilation) <= 0:
                raise ConfigError(f"conv block sizes must be positive, got {s}")
            conv = partial(
                nn.Conv2d,
                in_channels,
                kernel_size=s.kernel_size,
                stride=s.stride,
                padding=s.padding,
                dilation=s.dilation,
            )
            pool = lookup("pool", POOLS, s.pool)(s.pool_size)
            self.blocks.append(
                HiddenBlock(conv, s.channels, act, batch_norm, batch_norm_position, dropout, pool)
            )
            in_channels = s.channels
        # Size the head by tracing a dummy batch, in eval mode so batch norm's statistics stay put.
        try:
            with torch.no_grad():
                features = (
                    nn.Sequential(*self.blocks).eval()(torch.zeros(2, *input_shape))[0].numel()
                )
        except RuntimeError as err:
            raise ConfigError(
                f"conv blocks do not fit a {tuple(input_shape)} input: {err}"
            ) from None
        self.train()
        if head_width:
            head = partial(nn.Linear, features)
            self.blocks.append(
                HiddenBlock(head, head_width, act, batch_norm, batch_norm_position, dropout)
            )
            features = head_width
        self.output = nn.Linear(features, num_classes)
        self.act = act
        self.init_args = init_weights(self, weight_init, weight_init_args, act)
