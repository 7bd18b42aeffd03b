"""Figures of the diagnostics: gradient norm by depth per epoch, activation histograms per layer.

Built with matplotlib's object API (``Figure``), never pyplot, so importing this module sets no
backend.
"""

from __future__ import annotations

import math

from matplotlib import colormaps
from matplotlib.figure import Figure

from lab.diagnostics.probes import LayerStats


def grad_norm_by_depth(per_epoch: dict[int, list[float]]) -> Figure:
    """One line per epoch: weight-gradient L2 norm against depth index (log scale)."""
    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    cmap = colormaps["viridis"]
    epochs = sorted(per_epoch)
    for k, epoch in enumerate(epochs):
        norms = per_epoch[epoch]
        norms = [n if math.isfinite(n) else float("nan") for n in norms]
        colour = cmap(k / max(1, len(epochs) - 1))
        ax.plot(
            range(len(norms)),
            [max(n, 1e-12) for n in norms],
            marker="o",
            color=colour,
            label=f"epoch {epoch}",
        )
    ax.set_yscale("log")
    ax.set_xlabel("layer depth (0 = first hidden, last = output)")
    ax.set_ylabel("||dL/dW||  (last measured step of the epoch)")
    ax.set_title("Gradient norm by depth")
    ax.legend(fontsize=7, ncol=2)
    return fig


def activation_histograms(stats: list[LayerStats]) -> Figure:
    """One histogram per hidden layer of its outputs on the probe batch (eval mode)."""
    n = len(stats)
    fig = Figure(figsize=(3 * n, 2.8), layout="tight")
    axes = fig.subplots(1, n, squeeze=False)
    for i, (ax, s) in enumerate(zip(axes[0], stats, strict=True)):
        values = s.values[s.values.isfinite()].numpy()  # a diverged layer must not break the figure
        ax.hist(values, bins=60, color="steelblue")
        ax.set_title(f"layer {i}: mean {s.mean:.2f}, dead {s.dead_frac:.0%}", fontsize=8)
        ax.set_yticks([])
    fig.suptitle("Activations per hidden layer (probe batch, eval mode)")
    return fig
