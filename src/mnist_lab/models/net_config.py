"""How a network is described in a checkpoint (``class_path`` + ``init_args``) and rebuilt from it.

A checkpoint that only holds weights cannot be used without knowing the network that owns them;
one that also holds this small description rebuilds its own network, whatever command trained it.
Networks built by LightningCLI are described by their config; networks built in Python remember
their constructor arguments when their class is decorated with :func:`remember_config`.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Mapping
from typing import Any, TypeVar

from torch import nn

from mnist_lab.errors import ConfigError

ModuleT = TypeVar("ModuleT", bound=type[nn.Module])


def plain(value: Any) -> Any:
    """Dataclasses, tuples and mappings as dicts and lists, so a checkpoint loads with ``weights_only``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def remember_config(cls: ModuleT) -> ModuleT:
    """Class decorator: instances keep ``init_config``, their class path and every constructor argument."""
    original = cls.__init__

    @functools.wraps(original)
    def __init__(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        bound = inspect.signature(original).bind(self, *args, **kwargs)
        bound.apply_defaults()
        original(self, *args, **kwargs)
        init_args = {k: plain(v) for k, v in list(bound.arguments.items())[1:]}
        if type(self) is cls:  # a subclass describes itself through its own decorator
            self.init_config = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}

    cls.__init__ = __init__  # type: ignore[method-assign]
    return cls


def describe(net: nn.Module) -> dict[str, Any] | None:
    """The network's ``{"class_path", "init_args"}``, or None when it cannot say how it was built."""
    config = getattr(net, "init_config", None)
    return plain(config) if isinstance(config, Mapping) else None


def build(config: Mapping[str, Any]) -> nn.Module:
    """Instantiate a described network (jsonargparse resolves the class and types its arguments)."""
    from jsonargparse import ArgumentParser

    if "class_path" not in config:
        raise ConfigError(f"a network description needs a class_path, got keys {sorted(config)}")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(nn.Module, "net", fail_untyped=False)
    try:
        parsed = parser.parse_object({"net": plain(config)})
        return parser.instantiate_classes(parsed).net
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - jsonargparse reports a bad description in many ways
        cause = err.__cause__ or err.__context__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"cannot rebuild network {config.get('class_path')}: {err}") from None
