"""The stale-run part's callback (``configs/defaults.yaml``): tag the run, end the stale ones."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.parts.stale import end_stale_runs, tag_process
from mnist_lab.tracking.logger import run_logger


class StaleRuns(L.Callback):
    """Records this process on the run and ends the stale runs of this machine, once per run."""

    def __init__(self) -> None:
        self.tagged: str | None = None

    @rank_zero_only
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is not None and self.tagged != logger.run_id:  # fit then test: once
            self.tagged = logger.run_id
            end_stale_runs(logger.experiment)
            tag_process(logger.experiment, logger.run_id)
