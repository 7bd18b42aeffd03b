"""``predict``'s output: Lightning's ``BasePredictionWriter`` writing one CSV, logged to the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import Tensor

from mnist_lab.tracking.logger import run_logger


class PredictionsCSV(BasePredictionWriter):
    """``index, target, predicted, probability, p0..pK`` per example, in ``<root>/<filename>``.

    ``target`` is the batch's label (empty when it has none). Under DDP process ``r`` holds examples
    ``r, r + world_size, ...`` and writes ``<stem>-rank<r>.csv``.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch_and_epoch")
        self.filename = filename
        self._rows: list[tuple[Tensor, Tensor | None]] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def write_on_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any, *args: Any
    ) -> None:
        batch = args[1]  # (batch_indices, batch, batch_idx, dataloader_idx)
        target = batch[1].cpu() if isinstance(batch, (tuple, list)) and len(batch) == 2 else None
        self._rows.append((prediction.detach().cpu(), target))

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        if not self._rows:
            return
        probs = torch.cat([p for p, _ in self._rows])
        known = all(t is not None for _, t in self._rows)
        targets = torch.cat([t for _, t in self._rows]).tolist() if known else [""] * len(probs)
        best, predicted = probs.max(dim=1)
        lines = [
            ",".join(
                [
                    "index",
                    "target",
                    "predicted",
                    "probability",
                    *(f"p{k}" for k in range(probs.shape[1])),
                ]
            )
        ]
        for i, row in enumerate(probs.tolist()):
            index = trainer.global_rank + i * trainer.world_size
            values = ",".join(f"{v:.6f}" for v in row)
            lines.append(f"{index},{targets[i]},{int(predicted[i])},{float(best[i]):.6f},{values}")
        name = Path(self.filename)
        if trainer.world_size > 1:
            name = name.with_name(f"{name.stem}-rank{trainer.global_rank}{name.suffix}")
        out = Path(trainer.default_root_dir) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        logger = run_logger(trainer)
        if logger is not None and trainer.is_global_zero:
            logger.experiment.log_artifact(logger.run_id, str(out))
        print(f"wrote {len(probs)} predictions to {out}")
