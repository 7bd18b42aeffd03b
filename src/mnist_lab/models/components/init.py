"""The weight-init registry: one name -> one function of (weight, nonlinearity, param, **args).

Gains follow the layer's activation (``calculate_gain``, with leaky_relu's and PReLU's slope).
Biases start at 0 and batch norm at torch's weight 1, bias 0, so the scheme alone decides how the
weights start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import Activation, check_args, lookup
from mnist_lab.models.components.blocks import Network

_gain = nn.init.calculate_gain

INITS: dict[str, Callable[..., Any]] = {
    # PyTorch's own: kaiming_uniform with a=sqrt(5), i.e. U(+-1/sqrt(fan_in)).
    "default": lambda w, nl, p: nn.init.kaiming_uniform_(w, a=math.sqrt(5)),
    "zeros": lambda w, nl, p: nn.init.zeros_(w),
    "normal": lambda w, nl, p, std=0.01, mean=0.0: nn.init.normal_(w, mean=mean, std=std),
    "uniform": lambda w, nl, p, a=-0.05, b=0.05: nn.init.uniform_(w, a=a, b=b),
    "xavier_uniform": lambda w, nl, p: nn.init.xavier_uniform_(w, gain=_gain(nl, p)),
    "xavier_normal": lambda w, nl, p: nn.init.xavier_normal_(w, gain=_gain(nl, p)),
    "kaiming_uniform": lambda w, nl, p, mode="fan_in": nn.init.kaiming_uniform_(
        w, p or 0.0, mode, nl
    ),
    "kaiming_normal": lambda w, nl, p, mode="fan_in": nn.init.kaiming_normal_(
        w, p or 0.0, mode, nl
    ),
    "orthogonal": lambda w, nl, p: nn.init.orthogonal_(w, gain=_gain(nl, p)),
    # N(0, 1/fan_in) whatever the activation: the init SELU's self-normalisation assumes.
    "lecun_normal": lambda w, nl, p: nn.init.kaiming_normal_(
        w, mode="fan_in", nonlinearity="linear"
    ),
}


def init_weights(
    net: Network, scheme: str, args: Mapping[str, Any] | None, act: Activation
) -> dict[str, Any]:
    """Init every hidden layer of ``net`` for ``act``'s gain and its output layer as linear,
    biases at zero; return the init's arguments, its defaults included."""
    init = lookup("init", INITS, scheme)
    every = check_args("init", scheme, init, args)
    layers = [(block.layer, act.nonlinearity, act.param) for block in net.blocks] + [
        (net.output, "linear", None)
    ]
    for layer, nonlinearity, param in layers:
        try:  # torch checks the values (a negative std, a > b, an unknown mode) as it draws
            init(layer.weight, nonlinearity, param, **every)
        except (ValueError, RuntimeError) as err:
            raise ConfigError(f"init {scheme!r} rejects {dict(args or {})}: {err}") from None
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return every
