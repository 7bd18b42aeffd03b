"""The activation registry: one name -> one factory, plus what init and diagnostics need to know.

Every network asks this module for its non-linearity, so adding an activation is one entry in
``ACTIVATIONS``. Each entry also says which ``calculate_gain`` nonlinearity suits it, which init
the study should pair it with, and (for saturating ones) how to read its local slope from its
output, which the saturation diagnostic uses.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from mnist_lab.errors import ConfigError


class _HeavisideFn(torch.autograd.Function):
    """Heaviside forward; the true derivative (zero almost everywhere) backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return torch.zeros_like(x)


class Step(nn.Module):
    """The perceptron's threshold unit. Its gradient is zero, so layers below it never learn."""

    def forward(self, x: Tensor) -> Tensor:
        return _HeavisideFn.apply(x)


class Maxout(nn.Module):
    """Max over ``k`` linear pieces: the layer before must emit ``k`` times the features.

    Channels ``[j*k, (j+1)*k)`` of the input form the pieces of output unit ``j``.
    """

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        if k < 1:
            raise ConfigError(f"maxout needs k >= 1 pieces, got k={k}")
        self.pieces = k

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        return x.view(n, c // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return f"k={self.pieces}"


def _prelu(num_features: int, init: float = 0.25, per_channel: bool = False) -> nn.Module:
    return nn.PReLU(num_parameters=num_features if per_channel else 1, init=init)


def _sigmoid_slope(y: Tensor) -> Tensor:
    return y * (1 - y) / 0.25


def _tanh_slope(y: Tensor) -> Tensor:
    return 1 - y * y


@dataclass(frozen=True)
class ActivationSpec:
    """How to build an activation, and what init and diagnostics should know about it."""

    factory: Callable[..., nn.Module]
    nonlinearity: str  # the name ``torch.nn.init.calculate_gain`` understands
    recommended_init: str
    gain_arg: str | None = None  # the factory argument that is calculate_gain's ``param``
    relative_slope: Callable[[Tensor], Tensor] | None = None  # f'(x)/max f', from the output
    needs_width: bool = False  # factory takes the layer's feature count first


ACTIVATIONS: dict[str, ActivationSpec] = {
    "identity": ActivationSpec(nn.Identity, "linear", "xavier_uniform"),
    "step": ActivationSpec(Step, "linear", "xavier_uniform"),
    "sigmoid": ActivationSpec(nn.Sigmoid, "sigmoid", "xavier_uniform", relative_slope=_sigmoid_slope),
    "tanh": ActivationSpec(nn.Tanh, "tanh", "xavier_uniform", relative_slope=_tanh_slope),
    "relu": ActivationSpec(nn.ReLU, "relu", "kaiming_normal"),
    "leaky_relu": ActivationSpec(nn.LeakyReLU, "leaky_relu", "kaiming_normal", gain_arg="negative_slope"),
    "prelu": ActivationSpec(_prelu, "leaky_relu", "kaiming_normal", gain_arg="init", needs_width=True),
    "elu": ActivationSpec(nn.ELU, "relu", "kaiming_normal"),
    "relu6": ActivationSpec(nn.ReLU6, "relu", "kaiming_normal"),
    "softplus": ActivationSpec(nn.Softplus, "relu", "kaiming_normal"),
    "maxout": ActivationSpec(Maxout, "linear", "xavier_uniform"),
    "gelu": ActivationSpec(nn.GELU, "relu", "kaiming_normal"),
    "silu": ActivationSpec(nn.SiLU, "relu", "kaiming_normal"),
    "mish": ActivationSpec(nn.Mish, "relu", "kaiming_normal"),
    # torch's docs: for self-normalising nets use the 'linear' gain (LeCun init), not 'selu'.
    "selu": ActivationSpec(nn.SELU, "linear", "lecun_normal"),
}


def get_spec(name: str) -> ActivationSpec:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}") from None


def _default_args(factory: Callable[..., nn.Module]) -> dict[str, Any]:
    params = inspect.signature(factory).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def check_activation(name: str, args: Mapping[str, Any] | None = None) -> None:
    """Fail early (before any training) on an unknown name or an argument the factory lacks."""
    spec = get_spec(name)
    accepted = set(_default_args(spec.factory)) - {"inplace"}
    unknown = set(args or {}) - accepted
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(f"activation {name!r} takes no argument {sorted(unknown)}; it takes: {valid}")
    defaults = _default_args(spec.factory)
    for key, value in (args or {}).items():
        _check_type(name, key, value, defaults[key])


def _check_type(name: str, key: str, value: Any, default: Any) -> None:
    """An argument must have its default's kind: a number for a number, a bool for a bool."""
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        return
    if not ok:
        kind = "true or false" if isinstance(default, bool) else "a number"
        raise ConfigError(f"activation {name!r}: {key} must be {kind}, got {value!r}")


def effective_args(name: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every argument the activation is built with: its defaults, overridden by ``args``."""
    spec = get_spec(name)
    resolved = {k: v for k, v in _default_args(spec.factory).items() if k not in ("inplace", "num_features")}
    return {**resolved, **dict(args or {})}


def make_activation(name: str, num_features: int, args: Mapping[str, Any] | None = None) -> nn.Module:
    """Build activation ``name`` for a layer of ``num_features`` units (PReLU per channel needs it)."""
    check_activation(name, args)
    spec = get_spec(name)
    kwargs = dict(args or {})
    return spec.factory(num_features, **kwargs) if spec.needs_width else spec.factory(**kwargs)


def pieces(name: str, args: Mapping[str, Any] | None = None) -> int:
    """How many times its input width an activation consumes (maxout's k, else 1)."""
    return int((args or {}).get("k", 2)) if name == "maxout" else 1


def gain_for(name: str, args: Mapping[str, Any] | None = None) -> tuple[str, float | None]:
    """The ``(nonlinearity, param)`` pair for ``calculate_gain`` and the kaiming inits."""
    spec = get_spec(name)
    if spec.gain_arg is None:
        return spec.nonlinearity, None
    value = (args or {}).get(spec.gain_arg, _default_args(spec.factory)[spec.gain_arg])
    return spec.nonlinearity, float(value)
