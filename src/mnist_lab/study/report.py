"""Write the study's Markdown report and its PNG plots."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from matplotlib import colormaps
from matplotlib.figure import Figure

from mnist_lab.study.results import Row


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _variant(row: Row) -> str:
    return f"{row.init}{' + BN' if row.batch_norm else ''}"


def _averaged(rows: list[Row]) -> list[tuple[Row, int]]:
    """Average seeds of one configuration into one row (numbers only); returns (row, n_seeds)."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        groups[(row.activation, row.init, row.batch_norm)].append(row)
    out = []
    for runs in groups.values():

        def mean(attr: str, runs: list[Row] = runs) -> float | None:
            values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
            return sum(values) / len(values) if values else None

        first = runs[0]
        reached = [r.epochs_to_97 for r in runs if r.epochs_to_97 is not None]
        merged = Row(
            first.activation,
            first.init,
            first.batch_norm,
            first.seed,
            "/".join(sorted({r.status for r in runs})),
            mean("test_acc"),
            mean("train_loss"),
            mean("grad_ratio"),
            mean("dead_frac"),
            mean("act_mean"),
            max(reached) if len(reached) == len(runs) else None,
            first.grad_by_depth,
        )
        out.append((merged, len(runs)))
    return out


def table(rows: list[Row]) -> str:
    lines = [
        "| activation | init | batch norm | seeds | test acc | final train loss | grad norm first/last (init) "
        "| dead fraction | mean activation | epochs to 97% val |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, n in _averaged(rows):
        lines.append(
            f"| {row.activation} | {row.init} | {'on' if row.batch_norm else 'off'} | {n} "
            f"| {_fmt(row.test_acc and 100 * row.test_acc, '.2f')}% | {_fmt(row.train_loss, '.4f')} "
            f"| {_fmt(row.grad_ratio, '.2e')} | {_fmt(row.dead_frac, '.2f')} | {_fmt(row.act_mean, '+.3f')} "
            f"| {row.epochs_to_97 if row.epochs_to_97 is not None else '—'} |"
        )
    return "\n".join(lines)


def plots(rows: list[Row], out_dir: Path) -> list[Path]:
    """accuracy.png, grad_norm_by_depth.png and dead_fraction.png in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    averaged = [r for r, _ in _averaged(rows)]
    activations = list(dict.fromkeys(r.activation for r in averaged))
    variants = sorted({("recommended" if r.init != "default" else "default", r.batch_norm) for r in averaged})
    width = 0.8 / max(1, len(variants))
    paths = []

    for name, attr, ylabel in (
        ("accuracy.png", "test_acc", "test accuracy"),
        ("dead_fraction.png", "dead_frac", "dead fraction (mean over hidden layers)"),
    ):
        fig = Figure(figsize=(12, 4), layout="tight")
        ax = fig.subplots()
        for k, (init_kind, bn) in enumerate(variants):
            values = []
            for act in activations:
                match = [
                    r
                    for r in averaged
                    if r.activation == act and r.batch_norm == bn and (r.init == "default") == (init_kind == "default")
                ]
                values.append(getattr(match[0], attr) or 0.0 if match else 0.0)
            ax.bar(
                [i + k * width for i in range(len(activations))],
                values,
                width,
                label=f"{init_kind} init{' + BN' if bn else ''}",
            )
        ax.set_xticks([i + width * (len(variants) - 1) / 2 for i in range(len(activations))], activations, rotation=30)
        ax.set_ylabel(ylabel)
        if attr == "test_acc":
            ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        fig.savefig(out_dir / name, dpi=110)
        paths.append(out_dir / name)

    fig = Figure(figsize=(12, 4.5), layout="tight")
    axes = fig.subplots(1, 2, sharey=True)
    colours = colormaps["tab20"]
    for ax, init_kind in zip(axes, ("default", "recommended"), strict=True):
        for row in averaged:
            if row.batch_norm or (row.init == "default") != (init_kind == "default") or not row.grad_by_depth:
                continue
            k = activations.index(row.activation)
            ax.plot(
                [max(g, 1e-12) for g in row.grad_by_depth],
                marker="o",
                label=row.activation,
                color=colours(k % 20),
                linestyle=("-", "--", ":")[k % 3],
            )
        ax.set_yscale("log")
        ax.set_title(f"gradient norm by depth at init ({init_kind} init, no BN)")
        ax.set_xlabel("layer (0 = first hidden, last = output)")
        ax.set_xticks(range(max((len(r.grad_by_depth) for r in averaged), default=1)))
    axes[0].set_ylabel("||dL/dW|| at step 0")
    axes[1].legend(fontsize=7, ncol=2)
    fig.savefig(out_dir / "grad_norm_by_depth.png", dpi=110)
    paths.append(out_dir / "grad_norm_by_depth.png")
    return paths


def markdown(rows: list[Row], header: str, images: list[Path], report_dir: Path) -> str:
    figures = "\n\n".join(f"![{p.stem}]({p.relative_to(report_dir).as_posix()})" for p in images)
    return f"# Activation study\n\n{header}\n\n{table(rows)}\n\n{figures}\n"
