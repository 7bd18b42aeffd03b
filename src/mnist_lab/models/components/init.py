"""The weight-init registry: one name -> one function of (weight, nonlinearity, param, args).

Gains come from ``torch.nn.init.calculate_gain`` for the layer's activation (leaky_relu and PReLU
with their slope). Biases start at zero and BatchNorm at weight 1, bias 0, so the scheme alone
decides how the weights start.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from mnist_lab.errors import ConfigError

InitFn = Callable[..., None]


def _gain(nonlinearity: str, param: float | None) -> float:
    return nn.init.calculate_gain(nonlinearity, param)


def _default(w: Tensor, nl: str, p: float | None) -> None:
    """PyTorch's own: kaiming_uniform with a=sqrt(5), i.e. U(+-1/sqrt(fan_in))."""
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))


def _zeros(w: Tensor, nl: str, p: float | None) -> None:
    nn.init.zeros_(w)


def _normal(w: Tensor, nl: str, p: float | None, std: float = 0.01, mean: float = 0.0) -> None:
    nn.init.normal_(w, mean=mean, std=std)


def _uniform(w: Tensor, nl: str, p: float | None, a: float = -0.05, b: float = 0.05) -> None:
    nn.init.uniform_(w, a=a, b=b)


def _xavier_uniform(w: Tensor, nl: str, p: float | None) -> None:
    nn.init.xavier_uniform_(w, gain=_gain(nl, p))


def _xavier_normal(w: Tensor, nl: str, p: float | None) -> None:
    nn.init.xavier_normal_(w, gain=_gain(nl, p))


def _kaiming_uniform(w: Tensor, nl: str, p: float | None, mode: str = "fan_in") -> None:
    nn.init.kaiming_uniform_(w, a=p or 0.0, mode=mode, nonlinearity=nl)


def _kaiming_normal(w: Tensor, nl: str, p: float | None, mode: str = "fan_in") -> None:
    nn.init.kaiming_normal_(w, a=p or 0.0, mode=mode, nonlinearity=nl)


def _orthogonal(w: Tensor, nl: str, p: float | None) -> None:
    nn.init.orthogonal_(w, gain=_gain(nl, p))


def _lecun_normal(w: Tensor, nl: str, p: float | None) -> None:
    """N(0, 1/fan_in) whatever the activation: the init SELU's self-normalisation assumes."""
    nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="linear")


INITS: dict[str, InitFn] = {
    "default": _default,
    "zeros": _zeros,
    "normal": _normal,
    "uniform": _uniform,
    "xavier_uniform": _xavier_uniform,
    "xavier_normal": _xavier_normal,
    "kaiming_uniform": _kaiming_uniform,
    "kaiming_normal": _kaiming_normal,
    "orthogonal": _orthogonal,
    "lecun_normal": _lecun_normal,
}


def get_init(name: str) -> InitFn:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    try:
        return INITS[name]
    except KeyError:
        raise ConfigError(f"unknown init {name!r}; choose one of: {', '.join(INITS)}") from None


def check_init(name: str, args: Mapping[str, Any] | None = None) -> None:
    """Fail early on an unknown scheme or an argument it does not take."""
    fn = get_init(name)
    accepted = list(inspect.signature(fn).parameters)[3:]
    unknown = set(args or {}) - set(accepted)
    if unknown:
        raise ConfigError(
            f"init {name!r} takes no argument {sorted(unknown)}; it takes: {', '.join(accepted) or 'none'}"
        )


def init_layer(
    layer: nn.Module,
    scheme: str,
    nonlinearity: str = "linear",
    param: float | None = None,
    args: Mapping[str, Any] | None = None,
) -> None:
    """Initialise one Linear/Conv layer's weight by ``scheme``; its bias starts at zero."""
    check_init(scheme, args)
    weight = getattr(layer, "weight", None)
    if weight is None:
        return
    INITS[scheme](weight, nonlinearity, param, **dict(args or {}))
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def effective_init_args(name: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every argument the scheme runs with: its defaults (``std=0.01``), overridden by ``args``."""
    params = list(inspect.signature(get_init(name)).parameters.values())[3:]
    return {**{p.name: p.default for p in params}, **dict(args or {})}
