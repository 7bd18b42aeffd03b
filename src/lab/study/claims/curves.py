"""Per-run numbers for the depth and gradient claims: steps to an accuracy (never-reached runs
counted, not averaged), the settled accuracy, pre-activation gradient ratios and update cosines.
Each takes a run's record and returns None when the run lacks the metric."""

from __future__ import annotations

import math

from lab.study.claims.measures import Measure
from lab.study.results import RunRecord

PREACT = "diag/preact_grad/"
REL_GRAD = "diag/rel_grad/"
COSINE = "diag/update_cos/"


def steps_to(threshold: float) -> Measure:
    """The optimiser updates taken before the first validation reaching ``threshold`` val acc (its
    logged step + 1); None for a run that never does (only the runs that reached it are averaged;
    :func:`speed_to` counts the others)."""

    def measure(r: RunRecord) -> float | None:
        return next(
            (step + 1.0 for step, v in r.history.get("val/acc", []) if v >= threshold), None
        )

    return measure


def speed_to(threshold: float) -> Measure:
    """1000 / (steps to ``threshold``), 0 for a run that validated but never reached it: on a log
    scale the zeros make the comparison count the runs that reached it (Fisher's exact test) instead
    of averaging them."""

    def measure(r: RunRecord) -> float | None:
        if not r.history.get("val/acc"):
            return None
        steps = steps_to(threshold)(r)
        return 0.0 if steps is None else 1000.0 / steps

    return measure


def settled_acc(last: int = 3) -> Measure:
    """Mean val acc of the last ``last`` validations: a constant learning rate leaves SGD's noise in
    any single one."""

    def measure(r: RunRecord) -> float | None:
        values = r.series("val/acc")[-last:]
        return sum(values) / len(values) if values else None

    return measure


def acc_drift(last: int = 3) -> Measure:
    """:func:`settled_acc` minus the mean of the ``last`` validations before: near 0 once training
    has converged."""

    def measure(r: RunRecord) -> float | None:
        values = r.series("val/acc")
        if len(values) < 2 * last:
            return None
        return (sum(values[-last:]) - sum(values[-2 * last : -last])) / last

    return measure


def preact_ratio(at: str = "first") -> Measure:
    """First hidden layer's pre-activation gradient over the last hidden layer's (<< 1: it shrinks
    with depth)."""

    def measure(r: RunRecord) -> float | None:
        grads = r.by_depth(PREACT, at)  # hidden layers, then the logits
        return grads[0] / grads[-2] if len(grads) > 2 and grads[-2] > 0 else None

    return measure


def layer_value(prefix: str, layer: int, at: str = "first") -> Measure:
    """One layer's value under ``prefix``: at init (``first``) or at the last measurement."""

    def measure(r: RunRecord) -> float | None:
        return r.first(f"{prefix}{layer}") if at == "first" else r.last(f"{prefix}{layer}")

    return measure


def mean_over_training(key: str) -> Measure:
    """The mean of every finite value ``key`` logged over training."""

    def measure(r: RunRecord) -> float | None:
        values = [v for v in r.series(key) if math.isfinite(v)]
        return sum(values) / len(values) if values else None

    return measure
