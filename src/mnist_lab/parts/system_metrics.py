"""The machine's load in the run: ``system/*`` metrics (CPU, memory, disk; GPU where there is one),
sampled by the training loop itself every ``every_s`` seconds and at the end of each epoch and
stage, so even a short run has them and no thread runs beside training. The names are MLflow's, so
the UI shows them in its *System metrics* tab."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import lightning as L
import psutil
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.tracking.logger import run_logger


def sample() -> dict[str, float]:
    """This machine now, in MLflow's ``system/`` names."""
    memory, disk = psutil.virtual_memory(), psutil.disk_usage("/")
    found = {
        "cpu_utilization_percentage": psutil.cpu_percent(),  # since the last call
        "system_memory_usage_megabytes": (memory.total - memory.available) / 2**20,
        "system_memory_usage_percentage": memory.percent,
        "disk_usage_percentage": disk.percent,
        "disk_available_megabytes": disk.free / 2**20,
    }
    for gpu in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        free, total = torch.cuda.mem_get_info(gpu)
        found[f"gpu_{gpu}_memory_usage_megabytes"] = (total - free) / 2**20
        found[f"gpu_{gpu}_memory_usage_percentage"] = 100 * (total - free) / total
        with contextlib.suppress(ModuleNotFoundError, RuntimeError):  # needs nvidia-ml-py
            found[f"gpu_{gpu}_utilization_percentage"] = float(torch.cuda.utilization(gpu))
    return {f"system/{name}": value for name, value in found.items()}


class SystemMetrics(L.Callback):
    """``system/*`` metrics of rank 0's machine, at most every ``every_s`` seconds of training."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s, self.last, self.step = every_s, 0.0, -1

    @rank_zero_only
    def record(self, trainer: L.Trainer) -> None:
        logger = run_logger(trainer)
        if logger is not None and trainer.global_step != self.step:  # one sample a step
            self.last, self.step = time.monotonic(), trainer.global_step
            logger.log_metrics(sample(), step=trainer.global_step)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        psutil.cpu_percent()  # CPU use is measured from one call to the next

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self.record(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(trainer)

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record(trainer)
