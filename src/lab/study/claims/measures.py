"""Per-run numbers the claims tabulate and compare: each takes a run's record, None when it lacks
the metric."""

from __future__ import annotations

from collections.abc import Callable

from lab.study.results import RunRecord

Measure = Callable[[RunRecord], float | None]


def val_acc(r: RunRecord) -> float | None:
    """Validation accuracy after the last epoch."""
    return r.last("val/acc")


def val_acc_at(epoch: int) -> Measure:
    """Validation accuracy after ``epoch`` (1-based), or after the last epoch when the run was
    shorter."""

    def measure(r: RunRecord) -> float | None:
        values = r.series("val/acc")
        return values[min(epoch, len(values)) - 1] if values else None

    return measure


def epochs_to(threshold: float) -> Measure:
    """The first epoch reaching ``threshold`` val acc; None (left out of the mean, so n drops) if
    none does."""

    def measure(r: RunRecord) -> float | None:
        epoch = r.epochs_to("val/acc", threshold)
        return epoch if epoch != float("inf") else None

    return measure


def grad_ratio(at: str = "first") -> Measure:
    """First hidden layer's weight-gradient norm over the output layer's (<< 1: vanishing)."""

    def measure(r: RunRecord) -> float | None:
        grads = r.by_depth("diag/grad_norm/", at)
        return grads[0] / grads[-1] if len(grads) > 1 and grads[-1] > 0 else None

    return measure


def output_grad(at: str = "first") -> Measure:
    """The output layer's weight-gradient norm (at init, or at the last measurement)."""

    def measure(r: RunRecord) -> float | None:
        grads = r.by_depth("diag/grad_norm/", at)
        return grads[-1] if grads else None

    return measure


def hidden(prefix: str, at: str = "last") -> Measure:
    """Mean over the hidden layers of a per-layer diagnostic (``diag/dead_frac/`` ...)."""
    return lambda r: r.hidden_mean(prefix, at)


def over_training(prefix: str, skip_first: bool = False) -> Measure:
    """Mean over every measurement and layer (optionally without layer 0, whose inputs are
    pixels)."""

    def measure(r: RunRecord) -> float | None:
        layers = r.layers(prefix)[1 if skip_first else 0 :]
        values = [v for i in layers for v in r.series(f"{prefix}{i}")]
        return sum(values) / len(values) if values else None

    return measure


def std_ratio(r: RunRecord) -> float | None:
    """Last hidden layer's activation std over the first's at init (<< 1 collapses, >> 1
    explodes)."""
    stds = r.by_depth("diag/act_std/", "first")
    return stds[-1] / stds[0] if len(stds) > 1 and stds[0] > 0 else None


def min_distinct(r: RunRecord) -> float | None:
    """The fewest distinct units in any hidden layer at the end (1: all units are copies)."""
    units = r.by_depth("diag/distinct_units/", "last")
    return min(units) if units else None


def train_val_gap(r: RunRecord) -> float | None:
    """Training accuracy (last epoch, train mode) minus validation accuracy: the overfitting gap."""
    train, val = r.last("train/acc"), r.last("val/acc")
    return train - val if train is not None and val is not None else None


def mode_gap(at: str = "last") -> Measure:
    """Probe-batch accuracy in eval mode minus train mode (dropout off vs on, running vs batch
    statistics)."""
    return lambda r: r.first("diag/mode_gap/gap") if at == "first" else r.last("diag/mode_gap/gap")
