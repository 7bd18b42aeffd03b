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
    """``index, target, predicted, probability, p0..pK`` per example, in ``<default_root_dir>/<filename>``.

    ``target`` is the dataset's label (empty when the batch has none), ``predicted`` the argmax class
    and ``probability`` its probability. Under DDP each process writes ``<stem>-rank<r>.csv``.
    """

    def __init__(self, filename: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch_and_epoch")
        self.filename = filename
        self._rows: list[tuple[Tensor, Tensor | None]] = []

    def on_predict_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._rows = []

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        target = batch[1] if isinstance(batch, (tuple, list)) and len(batch) == 2 else None
        self._rows.append((prediction.detach().cpu(), None if target is None else target.cpu()))

    def path(self, trainer: L.Trainer) -> Path:
        name = Path(self.filename)
        if trainer.world_size > 1:
            name = name.with_name(f"{name.stem}-rank{trainer.global_rank}{name.suffix}")
        return Path(trainer.default_root_dir) / name

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Any, batch_indices: Any
    ) -> None:
        if not self._rows:
            return
        probs = torch.cat([p for p, _ in self._rows])
        targets = [t for _, t in self._rows]
        labels = torch.cat(targets).tolist() if all(t is not None for t in targets) else [""] * len(probs)
        header = ["index", "target", "predicted", "probability"] + [f"p{k}" for k in range(probs.shape[1])]
        best, predicted = probs.max(dim=1)
        columns = zip(probs.tolist(), labels, best.tolist(), predicted.tolist(), strict=True)
        lines = [",".join(header)]
        rank, ranks = trainer.global_rank, trainer.world_size  # process r holds examples r, r + ranks, ...
        for i, (row, label, top, cls) in enumerate(columns):
            lines.append(f"{rank + i * ranks},{label},{cls},{top:.6f}," + ",".join(f"{v:.6f}" for v in row))
        out = self.path(trainer)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines) + "\n")
        logger = run_logger(trainer)
        if logger is not None and trainer.is_global_zero:
            logger.experiment.log_artifact(logger.run_id, str(out))
        print(f"wrote {len(probs)} predictions to {out}")
