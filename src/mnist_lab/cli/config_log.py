"""LightningCLI's documented way to send the resolved config to a logger: a ``SaveConfigCallback``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import yaml
from lightning.pytorch.cli import SaveConfigCallback

from mnist_lab.tracking import run_logger
from mnist_lab.tracking.run_info import flatten_config


def effective_net_params(pl_module: L.LightningModule) -> dict[str, Any]:
    """The activation's and the init's real arguments (``negative_slope=0.01`` when left at its default)."""
    from mnist_lab.models.components.activations import effective_args
    from mnist_lab.models.components.init import effective_init_args

    net = getattr(pl_module, "hparams", {}).get("net") or {}
    args = net.get("init_args") or {}
    params: dict[str, Any] = {}
    if "activation" in args:
        resolved = effective_args(args["activation"], args.get("activation_args"))
        params.update({f"model.net.activation_args.{k}": v for k, v in resolved.items()})
    if "weight_init" in args:
        resolved = effective_init_args(args["weight_init"], args.get("weight_init_args"))
        params.update({f"model.net.weight_init_args.{k}": v for k, v in resolved.items()})
    return params


class LogConfigToRun(SaveConfigCallback):
    """Log ``config.yaml`` (re-runnable with ``--config``) and the flattened config as params."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(*args, **kwargs)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        text = self.parser.dump(self.config, skip_none=False)
        logger.experiment.log_text(logger.run_id, text, "config.yaml")
        params = flatten_config(yaml.safe_load(text))
        effective = effective_net_params(pl_module)  # the real values where the config says `None`
        replaced = tuple({key.rsplit(".", 1)[0] for key in effective})
        params = {
            k: v for k, v in params.items() if not (k in replaced or k.startswith(tuple(r + "." for r in replaced)))
        }
        params.update(effective)
        logger.log_hyperparams(params)
        subcommand = trainer.state.fn.value if trainer.state.fn else stage
        logger.experiment.set_tag(logger.run_id, "subcommand", str(subcommand))
        if self.config.get("ckpt_path"):
            logger.experiment.set_tag(logger.run_id, "checkpoint.loaded", str(Path(self.config.ckpt_path).resolve()))
