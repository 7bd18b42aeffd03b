"""Every figure is a plain ``matplotlib.figure.Figure`` that saves a PNG, and none touches pyplot's registry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix

from mnist_lab.diagnostics.plots import activation_histograms, grad_norm_by_depth
from mnist_lab.diagnostics.probes import activation_stats
from mnist_lab.models.components import MLP
from mnist_lab.study.report import plots
from mnist_lab.study.results import Row
from mnist_lab.tracking.plots import confusion_figure, misclassified_figure


def _open_pyplot_figures() -> list[int]:
    pyplot = sys.modules.get("matplotlib.pyplot")  # imported by a library, if at all
    return pyplot.get_fignums() if pyplot is not None else []


def _confusion() -> MulticlassConfusionMatrix:
    confusion = MulticlassConfusionMatrix(num_classes=10)
    confusion.update(torch.arange(10), torch.arange(10).roll(1))
    return confusion


@pytest.mark.parametrize(
    "make",
    [
        lambda: confusion_figure(_confusion()),
        lambda: misclassified_figure(torch.rand(5, 1, 28, 28), torch.arange(5), torch.arange(5) + 1),
        lambda: grad_norm_by_depth({0: [1.0, 0.1, 0.0], 1: [2.0, 0.2, 0.01]}),
        lambda: activation_histograms(activation_stats(MLP(depth=2, width=8), torch.randn(32, 1, 28, 28))),
    ],
    ids=["confusion", "misclassified", "grad_norm_by_depth", "activation_histograms"],
)
def test_figures_are_object_api_figures_that_save(make, tmp_path: Path) -> None:
    before = _open_pyplot_figures()
    fig = make()
    assert isinstance(fig, Figure)
    fig.savefig(tmp_path / "figure.png")
    assert (tmp_path / "figure.png").stat().st_size > 1000
    assert _open_pyplot_figures() == before


def test_study_plots_write_pngs_without_pyplot(tmp_path: Path) -> None:
    rows = [
        Row(act, init, bn, 0, "FINISHED", 0.9, 0.1, 0.5, 0.0, 0.2, 1, [1.0, 0.5, 0.2])
        for act in ("relu", "tanh")
        for init in ("default", "kaiming_normal")
        for bn in (False, True)
    ]
    paths = plots(rows, tmp_path)
    assert sorted(p.name for p in paths) == ["accuracy.png", "dead_fraction.png", "grad_norm_by_depth.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
    assert _open_pyplot_figures() == []
