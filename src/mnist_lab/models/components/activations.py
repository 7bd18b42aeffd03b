"""The activation registry: one name -> one factory, plus the gain its layer's init needs.

Every network resolves its non-linearity once with :func:`resolve_activation` into an
:class:`Activation` (factory, gain, pieces), from a registry name or any ``nn.Module`` class.
Adding an activation is one entry in ``ACTIVATIONS``: its factory and which ``calculate_gain``
nonlinearity suits it.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
class ActivationSpec:
    """A registry entry: how to build an activation, and what its layer's init should know about it."""

    factory: Callable[..., nn.Module]
    nonlinearity: str  # the name ``torch.nn.init.calculate_gain`` understands
    gain_arg: str | None = None  # the factory argument that is calculate_gain's ``param``
    needs_width: bool = False  # factory takes the layer's feature count first
    pieces_arg: str | None = None  # the factory argument that says how many inputs make one output (maxout's k)


ACTIVATIONS: dict[str, ActivationSpec] = {
    "identity": ActivationSpec(nn.Identity, "linear"),
    "step": ActivationSpec(Step, "linear"),
    "sigmoid": ActivationSpec(nn.Sigmoid, "sigmoid"),
    "tanh": ActivationSpec(nn.Tanh, "tanh"),
    "relu": ActivationSpec(nn.ReLU, "relu"),
    "leaky_relu": ActivationSpec(nn.LeakyReLU, "leaky_relu", gain_arg="negative_slope"),
    "prelu": ActivationSpec(_prelu, "leaky_relu", gain_arg="init", needs_width=True),
    "elu": ActivationSpec(nn.ELU, "relu"),
    "relu6": ActivationSpec(nn.ReLU6, "relu"),
    "softplus": ActivationSpec(nn.Softplus, "relu"),
    "maxout": ActivationSpec(Maxout, "linear", pieces_arg="k"),
    "gelu": ActivationSpec(nn.GELU, "relu"),
    "silu": ActivationSpec(nn.SiLU, "relu"),
    "mish": ActivationSpec(nn.Mish, "relu"),
    # torch's docs: for self-normalising nets use the 'linear' gain (LeCun init), not 'selu'.
    "selu": ActivationSpec(nn.SELU, "linear"),
}

# What an unregistered ``nn.Module`` class gets: a gain of 1 and one input per output.
_UNREGISTERED = ActivationSpec(nn.Identity, "linear")


@dataclass(frozen=True)
class Activation:
    """An activation resolved once from a name or a class and its arguments.

    ``activation(num_features)`` builds the module for a layer of that many units; ``nonlinearity``
    and ``param`` are what ``calculate_gain`` and the kaiming inits take; ``pieces`` is how many times
    its output width the layer before must emit (maxout's ``k``, else 1).
    """

    name: str
    spec: ActivationSpec
    args: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, num_features: int) -> nn.Module:
        kwargs = dict(self.args)
        return self.spec.factory(num_features, **kwargs) if self.spec.needs_width else self.spec.factory(**kwargs)

    @property
    def nonlinearity(self) -> str:
        return self.spec.nonlinearity

    @property
    def param(self) -> float | None:
        if self.spec.gain_arg is None:
            return None
        return float(self.args.get(self.spec.gain_arg, _default_args(self.spec.factory)[self.spec.gain_arg]))

    @property
    def gain(self) -> float:
        return nn.init.calculate_gain(self.nonlinearity, self.param)

    @property
    def pieces(self) -> int:
        arg = self.spec.pieces_arg
        return 1 if arg is None else int(self.args.get(arg, _default_args(self.spec.factory)[arg]))


ActivationLike = str | type[nn.Module] | Activation


def get_spec(name: str) -> ActivationSpec:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}") from None


def _default_args(factory: Callable[..., nn.Module]) -> dict[str, Any]:
    params = inspect.signature(factory).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _import_class(path: str) -> type[nn.Module]:
    module_name, _, class_name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"activation {path!r} is not an importable nn.Module class")
    return cls


def _spec_for_class(cls: type[nn.Module]) -> tuple[str, ActivationSpec]:
    """The registry entry built by ``cls`` (so nn.Tanh gets tanh's gain), else a linear-gain one."""
    for name, spec in ACTIVATIONS.items():
        if spec.factory is cls:
            return name, spec
    return f"{cls.__module__}.{cls.__qualname__}", replace(_UNREGISTERED, factory=cls)


def resolve_activation(activation: ActivationLike, args: Mapping[str, Any] | None = None) -> Activation:
    """Resolve ``activation`` once, like timm's ``get_act_layer``; fail early on a bad name or argument.

    ``activation`` is a registry name (``"leaky_relu"``), an ``nn.Module`` class (``nn.Hardswish``) or
    its dotted import path (``"torch.nn.Hardswish"``), or an :class:`Activation` already resolved.
    ``args`` go to its factory (``{negative_slope: 0.1}``, ``{k: 3}``).
    """
    if isinstance(activation, Activation):
        if args:
            raise ConfigError("give the arguments of a resolved Activation when resolving it, not again")
        return activation
    if isinstance(activation, str) and activation not in ACTIVATIONS and "." in activation:
        activation = _import_class(activation)
    if isinstance(activation, str):
        name, spec = activation, get_spec(activation)
    elif isinstance(activation, type) and issubclass(activation, nn.Module):
        name, spec = _spec_for_class(activation)
    else:
        raise ConfigError(f"activation must be a name or an nn.Module class, got {activation!r}")
    accepted = set(_default_args(spec.factory)) - {"inplace"}
    unknown = set(args or {}) - accepted
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none"
        raise ConfigError(f"activation {name!r} takes no argument {sorted(unknown)}; it takes: {valid}")
    defaults = _default_args(spec.factory)
    for key, value in (args or {}).items():
        _check_type(name, key, value, defaults[key])
    resolved = Activation(name, spec, dict(args or {}))
    if resolved.pieces < 1:
        raise ConfigError(f"{name} needs at least 1 piece, got {resolved.pieces}")
    return resolved


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
