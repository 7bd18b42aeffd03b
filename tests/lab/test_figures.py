"""Every figure is a plain ``matplotlib.figure.Figure`` that saves a PNG, and none touches pyplot's registry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix

from lab.diagnostics.plots import activation_histograms, grad_norm_by_depth
from lab.diagnostics.probes import activation_stats
from lab.study.claims import CLAIMS, group
from lab.study.plots import figure
from lab.study.results import RunRecord
from mnist_lab.models.components import MLP
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


@pytest.mark.parametrize("claim", list(CLAIMS.values()), ids=list(CLAIMS))
def test_study_figures_write_pngs_without_pyplot(claim, tmp_path: Path) -> None:
    history = {"val/acc": [(0, 0.90), (1, 0.95)], "diag/grad_norm/0": [(0, 0.1), (50, 0.2)]}
    history["diag/grad_norm/1"] = [(0, 1.0), (50, 0.5)]
    records = [
        RunRecord(claim.name, variant.name, seed, "FINISHED", {k: v[-1][1] for k, v in history.items()}, history)
        for variant in claim.variants
        for seed in (42, 43)
    ]
    path = figure(claim, group(records), tmp_path / f"{claim.name}.png")
    assert path.stat().st_size > 5000
    assert _open_pyplot_figures() == []
