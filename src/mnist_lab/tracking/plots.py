"""Test-set figures for a run: the confusion matrix and a grid of misclassified digits."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from torch import Tensor  # noqa: E402
from torchmetrics.classification import MulticlassConfusionMatrix  # noqa: E402


def confusion_figure(confusion: MulticlassConfusionMatrix, value: Tensor | None = None) -> Figure:
    """torchmetrics draws it (``value``: an already computed matrix); we only title it."""
    fig, ax = confusion.plot(val=value, add_text=True)
    ax.set_title("Test set confusion matrix (rows: true, columns: predicted)")
    fig.set_size_inches(8, 8)
    return fig


def misclassified_figure(images: Tensor, true: Tensor, pred: Tensor, columns: int = 8) -> Figure:
    """Up to ``len(images)`` wrong digits, each titled ``true -> predicted``."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].squeeze(0).cpu().numpy(), cmap="gray_r")
            ax.set_title(f"{int(true[i])} -> {int(pred[i])}", fontsize=9, color="crimson")
    fig.suptitle(f"{n} misclassified test digits (true -> predicted)")
    fig.tight_layout()
    return fig
