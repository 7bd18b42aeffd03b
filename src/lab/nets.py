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
from mnist_lab.models.components.activations import check_args, lookup
from mnist_lab.models.components.init import INITS


def bad_start(net: nn.Module, output_gain: float, bias_init: float) -> None:
    """Scale the output layer's weights and shift every hidden block, after the network's own
    init."""
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


class SchemeMLP(MLP):
    """:class:`~mnist_lab.models.components.MLP` with the hidden layers' init and batch norm's
    momentum chosen.

    The template's ``xavier_*`` and ``kaiming_*`` scale by the activation's gain, so on a ReLU net
    Xavier and He coincide; He et al. (2015) compare the two *schemes*: ``hidden_init="xavier"`` is
    Glorot's N(0, 2 / (fan_in + fan_out)) (gain 1), ``"he"`` is N(0, 2 / fan_in), whatever the
    activation; the output layer keeps ``weight_init``. ``bn_momentum`` is every BatchNorm's
    running-statistics momentum.
    """

    def __init__(
        self, *args: Any, hidden_init: str = "net", bn_momentum: float = 0.1, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        schemes = {
            "net": None,
            "xavier": lambda w: nn.init.xavier_normal_(w, gain=1.0),
            "he": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
        }
        if hidden_init not in schemes:
            raise ConfigError(
                f"hidden_init must be one of {', '.join(schemes)}, got {hidden_init!r}"
            )
        if not 0.0 < bn_momentum <= 1.0:
            raise ConfigError(f"bn_momentum must be in (0, 1], got {bn_momentum}")
        init = schemes[hidden_init]
        with torch.no_grad():
            for block in self.blocks:
                if init is not None:
                    init(block.layer.weight)
                if isinstance(block.norm, (nn.BatchNorm1d, nn.BatchNorm2d)):
                    block.norm.momentum = bn_momentum


class BadStartMLP(MLP):
    """:class:`~mnist_lab.models.components.MLP` plus ``output_gain`` and ``bias_init``."""

    def __init__(
        self, *args: Any, output_gain: float = 1.0, bias_init: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        bad_start(self, output_gain, bias_init)


class BadStartCNN(CNN):
    """:class:`~mnist_lab.models.components.CNN` plus ``output_gain`` and ``bias_init``."""

    def __init__(
        self, *args: Any, output_gain: float = 1.0, bias_init: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        bad_start(self, output_gain, bias_init)


class Shifted(nn.Module):
    """``act(x) + shift``: the same derivative as ``act``, only its outputs' centre moves (tanh + 1
    lies in (0, 2), sigmoid - 1/2 in (-1/2, 1/2)), so a comparison with ``act`` changes the centring
    alone."""

    def __init__(self, act: nn.Module, shift: float) -> None:
        super().__init__()
        self.inner, self.shift = act, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.shift

    def extra_repr(self) -> str:
        return f"shift={self.shift:g}"


class StudyMLP(MLP):
    """The template's MLP with :class:`BadStartMLP`'s ``output_gain`` and ``bias_init``, plus what
    the gradient claims vary, each applied after the template's own init.

    ``hidden_gain`` multiplies the hidden layers' initial weights (Glorot's sigmoid advice: Xavier x
    4); ``output_init`` re-initialises the output layer alone with a scheme of the init registry at
    the linear gain (``xavier_uniform``: a normal(sigma) start on the hidden layers that keeps a
    sane output layer); ``act_shift`` adds a constant to every hidden unit's output
    (:class:`Shifted`).
    """

    def __init__(
        self,
        *args: Any,
        output_gain: float = 1.0,
        bias_init: float = 0.0,
        hidden_gain: float = 1.0,
        output_init: str | None = None,
        act_shift: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        for name, value in (("hidden_gain", hidden_gain), ("act_shift", act_shift)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")
        if output_init is not None:
            init = lookup("init", INITS, output_init)
            init(self.output.weight, "linear", None, **check_args("init", output_init, init, None))
            nn.init.zeros_(self.output.bias)
        with torch.no_grad():
            for block in self.blocks:
                block.layer.weight.mul_(hidden_gain)
        bad_start(self, output_gain, bias_init)
        if act_shift:
            for block in self.blocks:
                block.act = Shifted(block.act, float(act_shift))
