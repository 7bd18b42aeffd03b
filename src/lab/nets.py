"""The template's networks with the bad starts the textbook warns about, for the study only.

``output_gain`` scales the output layer's initial weights (20: logits large enough to saturate a
sigmoid or softmax); ``bias_init`` is every hidden block's shift before its activation (-1: ReLU
units that start dead): the layer's bias, or, when batch norm before the activation replaces the
bias, the norm's own shift.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components import CNN, MLP


def bad_start(net: nn.Module, output_gain: float, bias_init: float) -> None:
    """Scale the output layer's weights and shift every hidden block, after the network's own init."""
    for name, value in (("output_gain", output_gain), ("bias_init", bias_init)):
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
    with torch.no_grad():
        net.output.weight.mul_(output_gain)
        for block in net.blocks if bias_init else ():
            shift = getattr(block.layer, "bias", None)
            if shift is None and block.norm_position == "before":
                shift = getattr(block.norm, "bias", None)
            if shift is not None:
                shift.fill_(bias_init)


class BadStartMLP(MLP):
    """:class:`~mnist_lab.models.components.MLP` plus ``output_gain`` and ``bias_init``."""

    def __init__(self, *args: Any, output_gain: float = 1.0, bias_init: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bad_start(self, output_gain, bias_init)


class BadStartCNN(CNN):
    """:class:`~mnist_lab.models.components.CNN` plus ``output_gain`` and ``bias_init``."""

    def __init__(self, *args: Any, output_gain: float = 1.0, bias_init: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bad_start(self, output_gain, bias_init)
