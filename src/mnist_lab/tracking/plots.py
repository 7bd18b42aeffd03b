"""Test-set figures for a run: the confusion matrix and a grid of misclassified digits.

Figures are built with matplotlib's object API (``Figure``), never pyplot: no global backend,
no figure registry to leak into, and nothing to close. ``MlflowClient.log_figure`` saves them.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure
from torch import Tensor
from torchmetrics.classification import MulticlassConfusionMatrix


def confusion_figure(
    confusion: MulticlassConfusionMatrix, value: Tensor | None = None, class_names: Sequence[str] | None = None
) -> Figure:
    """torchmetrics draws it on our axes (``value``: an already computed matrix); we only title it."""
    fig = Figure(figsize=(8, 8))
    ax = fig.subplots()
    confusion.plot(val=value, ax=ax, add_text=True, labels=list(class_names) if class_names else None)
    ax.set_title("Test set confusion matrix (rows: true, columns: predicted)")
    return fig


def misclassified_figure(
    images: Tensor, true: Tensor, pred: Tensor, columns: int = 8, class_names: Sequence[str] | None = None
) -> Figure:
    """Up to ``len(images)`` wrong images, each titled ``true -> predicted`` (class names when given)."""
    name = (lambda k: class_names[k]) if class_names else str
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = Figure(figsize=(columns * 1.2, rows * 1.4), layout="tight")
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].squeeze(0).cpu().numpy(), cmap="gray_r")
            ax.set_title(f"{name(int(true[i]))} -> {name(int(pred[i]))}", fontsize=7, color="crimson")
    fig.suptitle(f"{n} misclassified test images (true -> predicted)")
    return fig
