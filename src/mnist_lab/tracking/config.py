"""LightningCLI's documented way to send the resolved config to a logger: a ``SaveConfigCallback``."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.cli import SaveConfigCallback

from mnist_lab.tracking.logger import run_logger


class LogConfig(SaveConfigCallback):
    """``config.yaml`` (re-runnable with ``--config``) as an artifact, every value as a param.

    A resumed run keeps the params it started with (MLflow forbids changing one) and gets the
    config it was resumed with as ``config_resumed.yaml``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        name = "config_resumed.yaml" if logger.resumed else "config.yaml"
        logger.experiment.log_text(logger.run_id, self.parser.dump(self.config, skip_none=False), name)
        logger.log_hyperparams(self.config.as_dict())  # MLFlowLogger flattens it (model/net/init_args/...)
        logger.experiment.set_tag(logger.run_id, "subcommand", str(getattr(stage, "value", stage)))
