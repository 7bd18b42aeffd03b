"""The activation registry: one name -> one factory, plus what its layer's init needs to know.

Networks resolve their activation once with :func:`resolve_activation`; ``lookup`` and
``check_args`` serve the init registry too.
"""

from __future__ import annotations

import inspect
import pydoc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from mnist_lab.errors import ConfigError

T = TypeVar("T")


class _Heaviside(torch.autograd.Function):
    """Heaviside forward; its true derivative (zero almost everywhere) backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return torch.zeros_like(grad)


class Step(nn.Module):
    """The perceptron's threshold unit. Its gradient is zero, so layers below it never learn."""

    def forward(self, x: Tensor) -> Tensor:
        return _Heaviside.apply(x)


class Maxout(nn.Module):
    """Max over ``k`` pieces: channels ``[j*k, (j+1)*k)`` of the input make output unit ``j``."""

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.pieces = k

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], x.shape[1] // self.pieces, self.pieces, *x.shape[2:]).amax(dim=2)

    def extra_repr(self) -> str:
        return f"k={self.pieces}"


def _prelu(num_features: int, init: float = 0.25, per_channel: bool = False) -> nn.Module:
    return nn.PReLU(num_parameters=num_features if per_channel else 1, init=init)


@dataclass(frozen=True)
class ActivationSpec:
    """A registry entry: how to build an activation, and which ``calculate_gain`` nonlinearity
    suits it."""

    factory: Callable[..., nn.Module]
    nonlinearity: str = "linear"
    gain_arg: str | None = None  # the factory argument that is calculate_gain's ``param``
    # the factory argument saying how many inputs make one output (maxout's k)
    pieces_arg: str | None = None
    needs_width: bool = False  # the factory takes the layer's unit count first


ACTIVATIONS: dict[str, ActivationSpec] = {
    "identity": ActivationSpec(nn.Identity),
    "step": ActivationSpec(Step),
    "sigmoid": ActivationSpec(nn.Sigmoid, "sigmoid"),
    "tanh": ActivationSpec(nn.Tanh, "tanh"),
    "relu": ActivationSpec(nn.ReLU, "relu"),
    "leaky_relu": ActivationSpec(nn.LeakyReLU, "leaky_relu", gain_arg="negative_slope"),
    "prelu": ActivationSpec(_prelu, "leaky_relu", gain_arg="init", needs_width=True),
    "elu": ActivationSpec(nn.ELU, "relu"),
    "relu6": ActivationSpec(nn.ReLU6, "relu"),
    "softplus": ActivationSpec(nn.Softplus, "relu"),
    "maxout": ActivationSpec(Maxout, pieces_arg="k"),
    "gelu": ActivationSpec(nn.GELU, "relu"),
    "silu": ActivationSpec(nn.SiLU, "relu"),
    "mish": ActivationSpec(nn.Mish, "relu"),
    # torch's docs: self-normalising nets want the linear (LeCun) gain
    "selu": ActivationSpec(nn.SELU),
}


@dataclass(frozen=True)
class Activation:
    """An activation resolved once: ``activation(width)`` builds its module for a layer of
    ``width`` units.

    ``nonlinearity`` and ``param`` are what ``calculate_gain`` takes; the layer before emits
    ``pieces`` x width.
    """

    name: str
    spec: ActivationSpec
    args: Mapping[str, Any] = field(default_factory=dict)
    param: float | None = None
    pieces: int = 1
    every: Mapping[str, Any] = field(default_factory=dict)  # args with the factory's defaults

    def __call__(self, width: int) -> nn.Module:
        return (
            self.spec.factory(width, **self.args)
            if self.spec.needs_width
            else self.spec.factory(**self.args)
        )

    @property
    def nonlinearity(self) -> str:
        return self.spec.nonlinearity

    @property
    def gain(self) -> float:
        return nn.init.calculate_gain(self.nonlinearity, self.param)


ActivationLike = str | type[nn.Module] | Activation


def lookup(kind: str, registry: Mapping[str, T], name: str) -> T:
    """``registry[name]``; an unknown name lists the valid ones."""
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of: {', '.join(registry)}")
    return registry[name]


def _kind(value: Any) -> str | None:
    """What a default asks of a value: a bool's a bool, an int's an int, a float's any number."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "an integer"
    return "a number" if isinstance(value, float) else None


def _fits(default: Any, value: Any) -> bool:
    kind, given = _kind(default), _kind(value)
    return kind is None or kind == given or (kind == "a number" and given == "an integer")


def check_args(
    kind: str, name: str, fn: Callable[..., Any], args: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Every argument ``fn`` runs with (its defaults, overridden by ``args``); bad ones fail early.

    ``fn`` takes the arguments it has defaults for; a bool's must be a bool, an int's an int
    (maxout's ``k`` of 2.5 would fail only at the first forward pass), a float's a number.
    """
    params = inspect.signature(fn).parameters.values()
    defaults = {
        p.name: p.default for p in params if p.default is not p.empty and p.name != "inplace"
    }
    if unknown := sorted(set(args or {}) - set(defaults)):
        raise ConfigError(
            f"{kind} {name!r} takes no argument {unknown}; "
            f"it takes: {', '.join(defaults) or 'none'}"
        )
    for key, value in (args or {}).items():
        if not _fits(defaults[key], value):
            raise ConfigError(
                f"{kind} {name!r}: {key} must be {_kind(defaults[key])}, got {value!r}"
            )
    return {**defaults, **(args or {})}


def resolve_activation(
    activation: ActivationLike, args: Mapping[str, Any] | None = None
) -> Activation:
    """Resolve ``activation`` once, like timm's ``get_act_layer``; fail early on a bad name or
    argument.

    ``activation`` is a registry name (``"leaky_relu"``), an ``nn.Module`` class (``nn.Hardswish``,
    which gets gain 1 unless registered) or its import path (``"torch.nn.Hardswish"``), or an
    :class:`Activation`. ``args`` go to its factory (``{negative_slope: 0.1}``, ``{k: 3}``).
    """
    if isinstance(activation, Activation):
        if args:
            raise ConfigError(
                "give the arguments of a resolved Activation when resolving it, not again"
            )
        return activation
    if isinstance(activation, str) and "." in activation:
        cls = pydoc.locate(activation)
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise ConfigError(f"activation {activation!r} is not an importable nn.Module class")
        activation = cls
    if isinstance(activation, str):
        name, spec = activation, lookup("activation", ACTIVATIONS, activation)
    elif isinstance(activation, type) and issubclass(activation, nn.Module):
        # so nn.Tanh gets tanh's gain
        registered = [n for n, s in ACTIVATIONS.items() if s.factory is activation]
        name = registered[0] if registered else f"{activation.__module__}.{activation.__qualname__}"
        spec = ACTIVATIONS[name] if registered else ActivationSpec(activation)
    else:
        raise ConfigError(f"activation must be a name or an nn.Module class, got {activation!r}")
    every = check_args("activation", name, spec.factory, args)
    pieces = int(every[spec.pieces_arg]) if spec.pieces_arg else 1
    if pieces < 1:
        raise ConfigError(f"{name} needs at least 1 piece, got {pieces}")
    param = float(every[spec.gain_arg]) if spec.gain_arg else None
    return Activation(name, spec, dict(args or {}), param, pieces, every)
