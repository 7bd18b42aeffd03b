"""A run's config as it trained, in MLflow: ``config.yaml`` (re-runnable) and every value a param,
made for comparing runs (defaults of the activation and init included, callbacks by class)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback

from mnist_lab.tracking.logger import run_logger

LINKED = {"num_classes": "num_classes", "input_shape": "image_shape"}  # model argument <- data's


def linked_targets(prefix: str = "") -> list[str]:
    """The model's and network's arguments that the data sets when they are built (``LINKED``)."""
    return [f"{prefix}{where}{target}" for target in LINKED for where in ("", "net.init_args.")]


class LogConfig(SaveConfigCallback):
    """LightningCLI's way to hand a logger the resolved config. A resumed run keeps its params
    (MLflow forbids changing one) and gets ``config_resumed.yaml``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        config = effective_config(self.config, trainer.datamodule, pl_module)
        name = "config_resumed.yaml" if logger.resumed else "config.yaml"
        logger.experiment.log_text(logger.run_id, self.parser.dump(config, skip_none=False), name)
        logger.log_hyperparams(keyed_by_class(config.as_dict()))
        logger.experiment.set_tag(logger.run_id, "subcommand", str(getattr(stage, "value", stage)))


def effective_config(config: Any, datamodule: Any, model: Any) -> Any:
    """The config with what the data linked in (a parsed config holds the defaults it replaced)
    and the network's activation and init arguments as used, defaults included."""
    config = config.clone()
    for key in linked_targets("model."):
        value = getattr(datamodule, LINKED[key.rpartition(".")[2]], None)
        if value is not None and key in config:
            config[key] = value
    effective = getattr(getattr(model, "net", None), "effective_args", None)
    for key, value in (effective() if callable(effective) else {}).items():
        if f"model.net.init_args.{key}" in config:
            config[f"model.net.init_args.{key}"] = value
    return config


def keyed_by_class(config: dict[str, Any]) -> dict[str, Any]:
    """Callbacks and plugins keyed by their class, not their place in the list, so adding one does
    not rename the others' params (a second of a class is ``<Class>_2``)."""
    trainer = dict(config.get("trainer") or {})
    for key in ("callbacks", "plugins"):
        if not isinstance(trainer.get(key), list):
            continue
        keyed: dict[str, Any] = {}
        for entry in trainer[key]:
            name = (
                str(entry.get("class_path", "")).rpartition(".")[2]
                if isinstance(entry, dict)
                else str(entry)
            )
            count = sum(k == name or k.startswith(f"{name}_") for k in keyed)
            keyed[f"{name}_{count + 1}" if count else name] = (entry or {}).get("init_args") or {}
        trainer[key] = keyed
    return {**config, "trainer": trainer}


def run_name(net: Any) -> str:
    """``mlp-leaky_relu-dropout0.3``: the network's class, then its arguments off their defaults."""
    if not isinstance(net, dict) or "class_path" not in net:
        return "run"
    module, _, name = net["class_path"].rpartition(".")
    signature = inspect.signature(getattr(importlib.import_module(module), name))
    defaults = {key: p.default for key, p in signature.parameters.items()}
    parts = [name.lower()]
    for key, value in (net.get("init_args") or {}).items():
        if key in LINKED or value == defaults.get(key, inspect.Parameter.empty):
            continue
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, bool):
            parts.append(key if value else f"no_{key}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key}{value:g}")
    return "-".join(parts)
