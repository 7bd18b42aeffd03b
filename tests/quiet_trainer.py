"""A Trainer for in-process tests: one CPU process, and no logger, checkpoints, bar or summary
unless asked."""

from __future__ import annotations

from typing import Any

import lightning as L


def quiet_trainer(**overrides: Any) -> L.Trainer:
    """``L.Trainer`` with the test defaults below; ``overrides`` win."""
    quiet = {"logger": False, "enable_progress_bar": False, "enable_model_summary": False}
    defaults = {
        "max_epochs": 1,
        "enable_checkpointing": False,
        "accelerator": "cpu",
        "devices": 1,
        **quiet,
    }
    return L.Trainer(**{**defaults, **overrides})


class LossRecorder(L.Callback):
    """Every training step's loss, in order."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *_: Any
    ) -> None:
        self.losses.append(float(outputs["loss"]))
