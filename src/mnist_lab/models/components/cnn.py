"""A plain convolutional network for 28x28 digits: conv blocks, then a dense head."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
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


def _pool(spec: ConvBlockSpec) -> nn.Module | None:
    if spec.pool == "max":
        return nn.MaxPool2d(spec.pool_size)
    if spec.pool == "avg":
        return nn.AvgPool2d(spec.pool_size)
    if spec.pool == "none":
        return None
    raise ConfigError(f"pool must be max, avg or none, got {spec.pool!r}")


DEFAULT_BLOCKS = (
    ConvBlockSpec(32),
    ConvBlockSpec(32, pool="max"),
    ConvBlockSpec(64),
    ConvBlockSpec(64, pool="max"),
)


class CNN(nn.Module):
    """``ConvBlock x len(blocks) -> flatten -> [dense HiddenBlock] -> Linear(num_classes)``.

    Activation, init, dropout and batch norm mean the same as
    in :class:`MLP`; batch norm is BatchNorm2d in the conv blocks and BatchNorm1d in the head.
    ``head_width=0`` drops the dense hidden layer.
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
        specs = [ConvBlockSpec(**b) if isinstance(b, Mapping) else b for b in blocks or DEFAULT_BLOCKS]
        act = check_network_options(activation, activation_args, weight_init, weight_init_args, dropout, num_classes)
        if head_width < 0:
            raise ConfigError(f"head_width must be >= 0, got {head_width}")
        common: dict[str, Any] = dict(activation=act, norm_position=batch_norm_position)
        bias = not (batch_norm and batch_norm_position == "before")  # BN's shift replaces the bias
        self.blocks = nn.ModuleList()
        in_channels = input_shape[0]
        for spec in specs:
            check_positive("conv block sizes", [spec.channels, spec.kernel_size, spec.stride, spec.dilation])
            conv = nn.Conv2d(
                in_channels,
                spec.channels * act.pieces,
                spec.kernel_size,
                stride=spec.stride,
                padding=spec.padding,
                dilation=spec.dilation,
                bias=bias,
            )
            width = norm_width(spec.channels, act, batch_norm_position)
            norm = nn.BatchNorm2d(width) if batch_norm else None
            drop = nn.Dropout(dropout) if dropout > 0 else None
            block = HiddenBlock(conv, spec.channels, norm=norm, dropout=drop, pool=_pool(spec), **common)
            self.blocks.append(block)
            in_channels = spec.channels
        features = self._flat_features(input_shape)
        if head_width:
            head = nn.Linear(features, head_width * act.pieces, bias=bias)
            width = norm_width(head_width, act, batch_norm_position)
            norm1d = nn.BatchNorm1d(width) if batch_norm else None
            drop = nn.Dropout(dropout) if dropout > 0 else None
            self.blocks.append(HiddenBlock(head, head_width, norm=norm1d, dropout=drop, **common))
            features = head_width
        self.output = nn.Linear(features, num_classes)
        initialise(self.blocks, self.output, weight_init, weight_init_args, act)

    def _flat_features(self, input_shape: tuple[int, int, int]) -> int:
        """Trace one dummy image through the conv blocks to size the head (fails on too-small maps)."""
        x = torch.zeros(2, *input_shape)
        try:
            with torch.no_grad():
                for block in self.blocks:
                    x = block.eval()(x)
        except RuntimeError as err:
            raise ConfigError(f"conv blocks do not fit a {tuple(input_shape)} input: {err}") from None
        finally:
            self.train()
        if x[0].numel() == 0:
            raise ConfigError(f"conv blocks shrink the {tuple(input_shape)} input to nothing")
        return int(x[0].numel())

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            if isinstance(block.layer, nn.Linear):
                x = x.flatten(1)
            x = block(x)
        return self.output(x.flatten(1))
