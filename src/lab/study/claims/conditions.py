"""What the unit and training claims share: the optimiser conditions, the study callback, their
measures.

The textbook's arguments speak of plain SGD (momentum where the argument allows it) at a constant
learning rate without clipping; the template trains with AdamW (weight decay 1e-4), cosine decay and
clipping at 1.0. :func:`sgd` and :func:`adamw` both switch the schedule and the clipping off, so the
optimiser is the one thing that differs between the two conditions.
"""

from __future__ import annotations

import math

from lab.study.claims.base import Measure
from lab.study.grid import NET
from lab.study.results import RunRecord

# the diagnostics, plus the study's
STUDY_CB = "--trainer.callbacks.class_path=lab.study.probes.StudyDiagnostics"
CB = "--trainer.callbacks.init_args"
STUDY_NET = "--model.net=lab.nets.SchemeMLP"  # hidden_init and bn_momentum
CONSTANT = ("--model.scheduler=null", "--trainer.gradient_clip_val=null")


def sgd(lr: float, momentum: float = 0.9) -> tuple[str, ...]:
    """Plain SGD (no weight decay) at a constant ``lr``, no clipping."""
    return (
        "--model.optimizer=torch.optim.SGD",
        f"--model.optimizer.init_args.lr={lr:g}",
        f"--model.optimizer.init_args.momentum={momentum:g}",
        "--model.optimizer.init_args.weight_decay=0",
        *CONSTANT,
    )


def unit_run(every: int, images: int) -> tuple[str, ...]:
    """The unit claims' run: a 2x128 MLP, 2 epochs of 100 batches, the units measured every
    ``every`` steps over ``images`` training images (the probe every 200)."""
    return (
        f"{NET}.width=128",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=100",
        "--trainer.limit_val_batches=2",
        f"{CB}.every_n_steps={every}",
        f"{CB}.probe_every_n_steps=200",
        f"{CB}.images={images}",
        f"{CB}.unit_every_n_steps={every}",
    )


def adamw(lr: float) -> tuple[str, ...]:
    """The template's AdamW (weight decay 1e-4) at a constant ``lr``, no clipping."""
    return (
        "--model.optimizer=torch.optim.AdamW",
        f"--model.optimizer.init_args.lr={lr:g}",
        *CONSTANT,
    )


def per_layer(prefix: str, down: bool = False) -> Measure:
    """The per-layer factor at init: (last / first hidden layer) ** (1 / (layers - 1)) of
    ``prefix/<i>``; with ``down`` first / last (a gradient, followed from the output towards the
    input)."""

    def measure(r: RunRecord) -> float | None:
        values = r.by_depth(prefix, "first")
        if len(values) < 2 or min(values) <= 0:
            return None
        ratio = values[0] / values[-1] if down else values[-1] / values[0]
        return ratio ** (1 / (len(values) - 1))

    return measure


def hidden_min(prefix: str, at: str = "last") -> Measure:
    """The smallest value over the hidden layers (e.g. the least spread-out layer's unit spread)."""

    def measure(r: RunRecord) -> float | None:
        values = r.by_depth(prefix, at)
        return min(values) if values else None

    return measure


def steps_to(key: str, threshold: float, censor: float) -> Measure:
    """The first training step whose ``key`` reaches ``threshold``; ``censor`` when no validation
    reached it (the run is counted as not reaching it, not left out)."""

    def measure(r: RunRecord) -> float | None:
        history = r.history.get(key, [])
        if not history:
            return None
        return next((float(step) for step, v in history if v >= threshold), censor)

    return measure


def mean_between(key: str, first: int, last: int) -> Measure:
    """The mean of ``key``'s values logged at steps in [first, last]."""

    def measure(r: RunRecord) -> float | None:
        values = [v for step, v in r.history.get(key, []) if first <= step <= last]
        return sum(values) / len(values) if values else None

    return measure


def at_best(key: str, by: str = "val/loss") -> Measure:
    """``key`` at the validation with the lowest ``by`` (the best epoch)."""

    def measure(r: RunRecord) -> float | None:
        ranked = dict(r.history.get(by, []))
        values = dict(r.history.get(key, []))
        steps = [s for s in ranked if s in values and math.isfinite(ranked[s])]
        return values[min(steps, key=lambda s: ranked[s])] if steps else None

    return measure


def lowest(key: str) -> Measure:
    """The smallest value ``key`` took (the best validation loss)."""

    def measure(r: RunRecord) -> float | None:
        values = [v for v in r.series(key) if math.isfinite(v)]
        return min(values) if values else None

    return measure


def difference(a: str, b: str) -> Measure:
    """The last ``a`` minus the last ``b`` (e.g. eval-mode training accuracy minus validation
    accuracy)."""

    def measure(r: RunRecord) -> float | None:
        x, y = r.last(a), r.last(b)
        return x - y if x is not None and y is not None else None

    return measure


def recovered(r: RunRecord) -> float | None:
    """The share of the units ever found dead that are alive at the end (None when no unit ever
    died)."""
    revived, ever = r.by_depth("study/revived/", "last"), r.by_depth("study/ever_dead/", "last")
    return sum(revived) / sum(ever) if ever and sum(ever) > 0 else None
