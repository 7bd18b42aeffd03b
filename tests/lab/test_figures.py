"""Every figure is a plain ``matplotlib.figure.Figure`` that saves a PNG, and none touches pyplot's
registry."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from matplotlib.figure import Figure

from lab.diagnostics.plots import activation_histograms, grad_norm_by_depth
from lab.diagnostics.probes import activation_stats
from lab.study.claims import CLAIMS, group
from lab.study.plots import figure
from lab.study.results import RunRecord

from mnist_lab.models.components import MLP


def _open_pyplot_figures() -> list[int]:
    pyplot = sys.modules.get("matplotlib.pyplot")  # imported by a library, if at all
    return pyplot.get_fignums() if pyplot is not None else []


@pytest.mark.parametrize(
    "make",
    [
        lambda: grad_norm_by_depth({0: [1.0, 0.1, 0.0], 1: [2.0, 0.2, 0.01]}),
        lambda: activation_histograms(
            activation_stats(MLP(depth=2, width=8), torch.randn(32, 1, 28, 28))
        ),
    ],
    ids=["grad_norm_by_depth", "activation_histograms"],
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
        RunRecord(
            claim.name,
            variant.name,
            seed,
            "FINISHED",
            {k: v[-1][1] for k, v in history.items()},
            history,
        )
        for variant in claim.variants
        for seed in (42, 43)
    ]
    path = figure(claim, group(records), tmp_path / f"{claim.name}.png")
    assert path.stat().st_size > 5000
    assert _open_pyplot_figures() == []


def test_study_axes_are_in_words_over_steps_and_log_axis_zeros_are_counted_not_drawn() -> None:
    from lab.study.claims.gradients import SATURATION
    from lab.study.plots import STEP, draw

    def run(variant: str, seed: int, first_layer: list[float]) -> RunRecord:
        history = {
            "val/acc": [(80, 0.90), (160, 0.95)],
            "diag/saturation/0": [(0, 0.5), (5, 0.4), (10, 0.3)],
            "diag/preact_grad/0": list(zip((0, 5, 10), first_layer, strict=True)),
        }
        return RunRecord(SATURATION.name, variant, seed, "FINISHED", {"val/acc": 0.95}, history)

    name = SATURATION.variants[0].name
    fig = draw(
        SATURATION, group([run(name, 42, [1.0, 1e-9, 0.0]), run(name, 43, [1.0, 1e-9, 1e-9])])
    )
    saturated, grads, accuracy = fig.axes[0], fig.axes[1], fig.axes[2]
    for ax in (saturated, grads, accuracy):
        assert ax.get_xlabel() == STEP and "/" not in ax.get_ylabel().replace("(L2)", "")
    assert saturated.get_ylabel() == "saturated units (fraction)"
    assert accuracy.get_ylabel() == "validation accuracy (%)"
    # the validations' training steps, not epochs 1, 2
    assert list(accuracy.lines[0].get_xdata()) == [80, 160]
    # percent, as in the tables
    assert list(accuracy.lines[0].get_ydata()) == pytest.approx([90.0, 95.0])
    line = grads.lines[0]
    # the zero left out
    assert list(line.get_xdata()) == [0, 5, 10] and line.get_ydata()[2] == pytest.approx(1e-9)
    assert "1 zero value(s) not drawn" in line.get_label() and min(line.get_ydata()) > 1e-10


def test_a_split_group_is_drawn_seed_by_seed_not_as_a_mean() -> None:
    from lab.study.claims.gradients import RELU, VANISHING
    from lab.study.plots import draw

    def run(seed: int, final: float) -> RunRecord:
        history = {"val/acc": [(80, 0.5), (160, final)]}
        return RunRecord(VANISHING.name, RELU, seed, "FINISHED", {"val/acc": final}, history)

    accuracy = draw(
        VANISHING, group([run(42 + k, v) for k, v in enumerate([0.92, 0.925, 0.11, 0.93, 0.921])])
    )
    lines = accuracy.axes[[p.key for p in VANISHING.panels].index("val/acc")].lines
    assert len(lines) == 5 and "split: each seed" in lines[0].get_label()
    # the collapsed seed, as it ended
    assert sorted(line.get_ydata()[-1] for line in lines)[0] == pytest.approx(11.0)
