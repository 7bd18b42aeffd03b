"""Signals become a stop between two training steps, with ``last.ckpt``; the one module that
installs signal handlers.

SIGINT, SIGTERM and SIGHUP (a closed terminal) only ask :data:`REQUEST` to stop while a training
step may run: :class:`Recovery` stops after the batch, after the optimiser step, and writes
``last.ckpt``. A second signal stops at once, without a checkpoint, unless it is the same one
within :data:`REPEAT_S`: ``make``, ``srun`` and ``torchrun`` pass on what ``kill -- -PGID`` already
sent to their whole group. Outside training (setting up, testing) the first signal stops at once.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from mnist_lab.errors import RunFault, TrainingInterrupted
from mnist_lab.names import LAST

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT_S = 1.5  # the same signal again within this is the same request, passed on by a parent


class StopRequest:
    """Why training should stop, set by a signal or asked for by a part (:meth:`ask`)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.signum: int | None = None
        self.reason: BaseException | None = None  # what the stop raises
        self.deferring = False  # a training step may be running: stop at the batch's end
        self.stopping = False  # the stop is being carried out: nothing may cut it short
        self.at = 0.0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        repeat = signum == self.signum and time.monotonic() - self.at < REPEAT_S
        if self.stopping or repeat:
            return
        if self.signum is not None or not self.deferring:
            self.signum, self.stopping = signum, True
            raise TrainingInterrupted(signum, forced=True)
        self.signum, self.at = signum, time.monotonic()
        self.reason = TrainingInterrupted(signum)
        print(
            f"\n{signal.Signals(signum).name} received: stopping after this batch (or this "
            "validation) with last.ckpt; send it again to stop at once, without a checkpoint",
            file=sys.stderr,
            flush=True,
        )

    def ask(self, reason: BaseException) -> None:
        """Stop after this batch with ``last.ckpt``, raising ``reason`` (a part's fault)."""
        self.reason = self.reason or reason


REQUEST = StopRequest()


@contextmanager
def handling(signals: tuple[int, ...], handler: Callable[[int, Any], None]) -> Iterator[None]:
    """``handler`` for ``signals`` for the duration (the main thread only); the old ones after."""
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def ignore_stop_signals() -> None:
    """This process ignores the stop signals (a worker whose parent decides when to stop)."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Route the stop signals to a fresh :data:`REQUEST` for the duration."""
    REQUEST.reset()
    with handling(SIGNALS, REQUEST.handle):
        try:
            yield REQUEST
        finally:
            REQUEST.reset()


class Recovery(L.Callback):
    """Stop between two batches with ``last.ckpt``; checkpoints carry the random generators.

    Not Lightning's ``OnExceptionCheckpoint``: with one present, Lightning turns every ``fit()``
    into ``fit(ckpt_path="last")``, so a new run would silently resume an old ``last.ckpt``.
    """

    def __init__(self) -> None:
        self.rng: dict[str, Any] | None = None  # restored at the first resumed step
        self.raised: BaseException | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        REQUEST.deferring = True
        # Ours, not Lightning's SIGTERM handler (installed at each fit): it broadcasts from inside
        # the handler under DDP, out of step with the other ranks; _check agrees on the stop.
        signal.signal(signal.SIGTERM, REQUEST.handle)
        state, self.rng = self.rng, None
        if state:  # just before the first resumed step, after everything that set up the run
            version, internal, gauss = state["python"]
            random.setstate((version, tuple(internal), gauss))
            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            torch.set_rng_state(state["torch"])
            if "torch.cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["torch.cuda"])

    def _check(self, trainer: L.Trainer) -> None:
        requested = REQUEST.reason is not None or REQUEST.signum is not None
        if trainer.world_size > 1:  # every rank must stop at the same batch, or collectives hang
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            REQUEST.deferring, REQUEST.stopping = False, True
            self.raised = REQUEST.reason or TrainingInterrupted(REQUEST.signum or signal.SIGTERM)
            raise self.raised

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        REQUEST.deferring = False
        self._check(trainer)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        REQUEST.deferring = False
        if exception is not self.raised or trainer.state.fn != "fit":
            return  # not a stop between two steps: the state may be inconsistent
        latest = latest_checkpoint(trainer)
        folder = Path(getattr(trainer.checkpoint_callback, "dirpath", None) or "checkpoints")
        path = str(folder / f"{LAST}.ckpt")
        if latest is not None:  # before saving: it is part of the saved state
            latest.best_model_path = latest.last_model_path = path
        try:
            trainer.save_checkpoint(path, weights_only=False)
        except RunFault as err:  # a full disk: the run must still end, with its status
            print(err, file=sys.stderr, flush=True)
            return
        for logger in trainer.loggers:  # so the run's logger uploads it
            logger.after_save_checkpoint(latest or trainer.checkpoint_callback)
        if trainer.is_global_zero:
            print(f"saved {path}", file=sys.stderr, flush=True)

    def state_dict(self) -> dict[str, Any]:
        np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        state: dict[str, Any] = {
            "python": list(random.getstate()),
            "numpy": [
                np_name,
                torch.from_numpy(np_keys.astype(np.int64)),
                np_pos,
                np_has_gauss,
                np_gauss,
            ],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["torch.cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rng = state_dict


def latest_checkpoint(trainer: L.Trainer) -> ModelCheckpoint | None:
    """The checkpoint callback that keeps ``last.ckpt``: a plain ``ModelCheckpoint`` named ``last``
    with no metric to monitor, so it rewrites the file at every validation."""
    found = [c for c in trainer.checkpoint_callbacks if isinstance(c, ModelCheckpoint)]
    return next((c for c in found if c.monitor is None and c.filename == LAST), None)
