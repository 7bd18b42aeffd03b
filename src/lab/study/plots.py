"""A claim's figure: one row of panels, each mean ± std over seeds; a panel without data says so in
words."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from lab.study.claims.base import Claim, Groups, Panel
from lab.study.results import RunRecord
from lab.study.stats import summarise

NO_DATA = "no data"


def empty(ax: Axes, title: str, why: str) -> None:
    """Say in the panel that it has nothing to show (and why), instead of drawing an empty axis."""
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    ax.text(
        0.5,
        0.5,
        f"{NO_DATA}:\n{why}",
        ha="center",
        va="center",
        transform=ax.transAxes,
        fontsize=10,
        color="dimgray",
        wrap=True,
    )


# The y-axis in words, with units, for the metrics (or prefixes) a line panel draws; accuracies
# in percent.
WORDS = {
    "val/acc": "validation accuracy (%)",
    "train/acc": "training accuracy (%)",
    "diag/grad_norm/": "weight-gradient norm (L2)",
    "diag/saturation/": "saturated units (fraction)",
    "diag/dead_frac/": "dead units (fraction)",
    "diag/act_std/": "activation standard deviation",
    "diag/grad_sign_agreement/": "weight gradients with the majority sign (fraction)",
    "diag/preact_grad/": "gradient w.r.t. pre-activations (L2, per example)",
    "diag/rel_grad/": "weight gradient over weights (L2 ratio)",
    "diag/update_cos/": "cosine between consecutive updates (per unit, mean)",
}
PERCENT = ("val/acc", "train/acc", "study/train_eval_acc")
STEP = "training step (optimiser updates)"
LAYER = "layer (0 = first hidden; the last is the output layer when it is logged)"


def _band(
    ax: Axes, runs: list[list[tuple[float, float]]], label: str, colour: object, log: bool
) -> bool:
    """Mean ± std over seeds at each x that every seed reached; False if nothing to draw.

    On a log axis the statistics are taken of log10 values (geometric mean, a multiplicative band),
    as in the tables; a value of 0 cannot sit on a log axis, so it is left out and the legend says
    how many were. Where the seeds split into two outcomes (:func:`lab.study.stats.split_at`) each
    seed is drawn instead.
    """
    runs = [r for r in runs if r]
    if not runs:
        return False
    xs = sorted(set.intersection(*(set(dict(r)) for r in runs)))
    points = [dict(r) for r in runs]
    zeros = sum(p[x] <= 0 for p in points for x in xs) if log else 0
    stats = {
        x: summarise(math.log10(p[x]) if log else p[x] for p in points if not log or p[x] > 0)
        for x in xs
    }
    xs = [x for x in xs if stats[x] is not None]
    if not xs:
        return False
    if any(stats[x].split for x in xs):  # type: ignore[union-attr]  # a mean of two outcomes is neither: each seed
        for k, p in enumerate(points):
            seed = [(x, p[x]) for x in xs if not log or p[x] > 0]
            label_k = f"{label} (n={len(runs)}, split: each seed)" if k == 0 else None
            ax.plot(
                *zip(*seed, strict=True),
                marker="o",
                markersize=2,
                lw=0.8,
                color=colour,
                label=label_k,
            )
        return True
    centre = [stats[x].mean for x in xs]  # type: ignore[union-attr]
    spread = [stats[x].std for x in xs]  # type: ignore[union-attr]
    low = [c - s for c, s in zip(centre, spread, strict=True)]
    high = [c + s for c, s in zip(centre, spread, strict=True)]
    if log:
        centre, low, high = ([10**v for v in values] for values in (centre, low, high))
    note = f", {zeros} zero value(s) not drawn" if zeros else ""
    ax.plot(
        xs, centre, marker="o", markersize=3, label=f"{label} (n={len(runs)}{note})", color=colour
    )
    ax.fill_between(xs, low, high, color=colour, alpha=0.2)
    return True


def _key(record: RunRecord, key: str) -> str:
    """``prefix/-1`` names the last layer logged under ``prefix/`` (the output layer)."""
    if key.endswith("/-1"):
        prefix = key[:-2]
        layers = record.layers(prefix)
        return f"{prefix}{layers[-1]}" if layers else key
    return key


def _series(record: RunRecord, panel: Panel) -> list[tuple[float, float]]:
    """(x, y) pairs: x the layer for a depth panel, else the training step the value was logged
    at."""
    if panel.kind == "depth":
        return list(enumerate(record.by_depth(panel.key, panel.at)))
    if panel.layer_mean:
        return record.mean_curve(panel.key)
    scale = 100.0 if panel.key in PERCENT else 1.0
    values = [(step, scale * v) for step, v in record.history.get(_key(record, panel.key), [])]
    if panel.minus:
        other = dict(record.history.get(panel.minus, []))
        values = [(step, v - scale * other[step]) for step, v in values if step in other]
    return values


def ylabel(panel: Panel) -> str:
    """The panel's y-axis in words: its own label, else the metric's (:data:`WORDS`)."""
    head, _, tail = panel.key.rpartition("/")
    # a layer's key: its prefix
    key = f"{head}/" if not tail or tail.lstrip("-").isdigit() else panel.key
    return panel.ylabel or WORDS.get(key, panel.key)


def _lines(ax: Axes, claim: Claim, groups: Groups, panel: Panel, variants: list[str]) -> bool:
    colours = colormaps["tab10"]
    drawn = False
    for k, name in enumerate(variants):
        runs = [_series(r, panel) for r in groups[name]]
        drawn |= _band(ax, runs, name, colours(k % 10), panel.log)
    if not drawn:
        return False
    if panel.log:
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(LAYER if panel.kind == "depth" else STEP)
    ax.set_ylabel(ylabel(panel))
    ax.legend(fontsize=7)
    return True


def _points(ax: Axes, claim: Claim, groups: Groups, panel: Panel, variants: list[str]) -> bool:
    column = claim.columns[panel.column]
    found = [(v, claim.stat(groups, v, panel.column)) for v in variants]
    found = [(v, s) for v, s in found if s is not None]
    if not found:
        return False
    xs = list(range(len(found)))
    ax.errorbar(
        xs,
        [column.scale * s.mean for _, s in found],
        yerr=[column.scale * s.std for _, s in found],
        fmt="o",
        capsize=4,
    )
    long = sum(len(v) for v, _ in found) > 60  # slanted, so long names do not run into each other
    ticks = [f"{v}\n(n={s.n})" for v, s in found]
    ax.set_xticks(
        xs, ticks, fontsize=7, rotation=25 if long else 0, ha="right" if long else "center"
    )
    unit = {"%": " (%)", " pt": " (points)"}.get(column.suffix, "")
    ax.set_ylabel(f"{column.title}{unit}")
    ax.margins(y=0.3)  # the axis zooms onto the points, so 97.8% and 98.4% look apart
    return True


def _heatmap(ax: Axes, claim: Claim, groups: Groups, panel: Panel, variants: list[str]) -> bool:
    column = claim.columns[panel.column]
    cells = {
        v.cell: claim.stat(groups, v.name, panel.column)
        for v in claim.variants
        if v.cell and v.name in variants
    }
    if not any(cells.values()):
        return False
    rows = list(dict.fromkeys(r for r, _ in cells))
    cols = list(dict.fromkeys(c for _, c in cells))
    grid = [[math.nan] * len(cols) for _ in rows]
    for (r, c), s in cells.items():
        if s is not None:
            grid[rows.index(r)][cols.index(c)] = column.scale * s.mean
            text = (
                f"{format(column.scale * s.mean, column.spec)}\n"
                f"±{format(column.scale * s.std, column.spec)}"
            )
            ax.text(cols.index(c), rows.index(r), text, ha="center", va="center", fontsize=6)
    image = ax.imshow(grid, aspect="auto", cmap="viridis", alpha=0.8)
    ax.figure.colorbar(image, ax=ax)
    ax.set_xticks(range(len(cols)), cols, fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    return True


DRAW = {"depth": _lines, "curve": _lines, "points": _points, "heatmap": _heatmap}


def draw(claim: Claim, groups: Groups) -> Figure:
    """Every panel of ``claim`` from its runs (``groups``: variant -> records), side by side."""
    panels = claim.panels
    tall = any(p.kind == "heatmap" for p in panels) and len(claim.variants) > 12
    fig = Figure(figsize=(5.2 * len(panels), 7.5 if tall else 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        variants = [
            v.name
            for v in claim.variants
            if v.name in groups and (not panel.only or v.name in panel.only)
        ]
        if not variants:
            empty(ax, panel.title, "no run of these configurations finished")
        elif not DRAW[panel.kind](ax, claim, groups, panel, variants):
            empty(
                ax,
                panel.title,
                f"the runs logged no {panel.key or claim.columns[panel.column].title}",
            )
        else:
            ax.set_title(panel.title, fontsize=9)
    fig.suptitle(claim.title, fontsize=11)
    return fig


def figure(claim: Claim, groups: Groups, path: Path) -> Path:
    """Draw ``claim``'s figure into ``path`` (PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draw(claim, groups).savefig(path, dpi=100)
    return path
