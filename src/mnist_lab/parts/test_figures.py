"""Test-set figures in the run: the confusion matrix and a grid of misclassified images.

Built with matplotlib's object API (``Figure``), never pyplot: no global backend, no figure
registry to leak into, nothing to close.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix

from mnist_lab.tracking.logger import run_logger


class TestSetFigures(L.Callback):
    """``figures/confusion_matrix.png`` and ``figures/misclassified.png`` (up to
    ``max_misclassified`` images) of each test, in the trainer's ``RunLogger`` run."""

    __test__ = False  # not a pytest class

    def __init__(self, max_misclassified: int = 48) -> None:
        self.max_misclassified = max_misclassified
        self.wrong: list[tuple[Tensor, Tensor, Tensor]] = []
        self.confusion: MulticlassConfusionMatrix | None = None
        self.matrix: Tensor | None = None

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        classes = getattr(trainer.datamodule, "num_classes", None) or pl_module.hparams.get(
            "num_classes", 10
        )
        self.confusion = MulticlassConfusionMatrix(num_classes=classes).to(pl_module.device)
        self.wrong = []

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        if not isinstance(outputs, Tensor) or self.confusion is None:
            return
        x, y = batch
        self.confusion.update(outputs, y)
        take = self.max_misclassified - sum(len(w[0]) for w in self.wrong)
        wrong = outputs != y
        if take > 0 and wrong.any():
            self.wrong.append(
                (x[wrong][:take].cpu(), y[wrong][:take].cpu(), outputs[wrong][:take].cpu())
            )

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        confusion = self.confusion  # compute() gathers over every process, so every rank calls it
        self.matrix = (
            confusion.compute() if confusion is not None and confusion.update_count else None
        )

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        names = getattr(trainer.datamodule, "class_names", None)
        if self.matrix is not None:
            figure = confusion_figure(self.confusion, self.matrix, names)
            logger.experiment.log_figure(logger.run_id, figure, "figures/confusion_matrix.png")
        if self.wrong:
            images, true, pred = (torch.cat(parts) for parts in zip(*self.wrong, strict=True))
            figure = misclassified_figure(images, true, pred, class_names=names)
            logger.experiment.log_figure(logger.run_id, figure, "figures/misclassified.png")


def confusion_figure(
    confusion: MulticlassConfusionMatrix,
    value: Tensor | None = None,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """torchmetrics draws it on our axes (``value``: an already computed matrix); we only title
    it."""
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    confusion.plot(
        val=value, ax=ax, add_text=True, labels=list(class_names) if class_names else None
    )
    ax.set_title("Test set confusion matrix (rows: true, columns: predicted)")
    return fig


def misclassified_figure(
    images: Tensor,
    true: Tensor,
    pred: Tensor,
    columns: int = 8,
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Up to ``len(images)`` wrong images, each titled ``true -> predicted`` (class names when
    given)."""
    name = (lambda k: class_names[k]) if class_names else str
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = Figure(figsize=(columns * 1.2, rows * 1.4), layout="tight")
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].squeeze(0).cpu().numpy(), cmap="gray_r")
            ax.set_title(
                f"{name(int(true[i]))} -> {name(int(pred[i]))}", fontsize=7, color="crimson"
            )
    fig.suptitle(f"{n} misclassified test images (true -> predicted)")
    return fig
