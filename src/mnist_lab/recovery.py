"""Stop cleanly on SIGINT/SIGTERM, checkpoint, and resume exactly.

While a training step runs, the first signal only sets a flag: :class:`Recovery` stops at the end of
the batch, after the optimiser step, and writes ``last.ckpt`` (never after an error or a divergence,
which would overwrite the last good checkpoint). A second signal stops at once, unless it is the
same signal within :data:`REPEAT_S`: ``make``, ``srun`` and ``torchrun`` pass on the signal that
``kill -- -PGID`` or SLURM already sent to their whole process group, so one request arrives twice.
Outside training (loading data, the sanity check, testing, predicting) the first signal stops at
once and no checkpoint is written. Once a stop is under way, further signals are ignored, so the checkpoint and
the run's KILLED status are written in full. Checkpoints also carry the random generators, so
dropout and augmentation continue the same stream. :class:`BestAndLastCheckpoint` is
``ModelCheckpoint`` whose ``last.ckpt`` follows every validation (Lightning 2.6 rewrites it only
when a new best is saved, so it can lag epochs behind).
"""

from __future__ import annotations

import random
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from mnist_lab.errors import RunFault, TrainingInterrupted
from mnist_lab.tracking.logger import run_logger
from mnist_lab.tracking.outage import StoreDown

SIGNALS = (signal.SIGINT, signal.SIGTERM)
REPEAT_S = 1.5  # the same signal again within this is the same request, passed on by a parent in the group


class StopRequest:
    """The process-wide stop flag the signal handler sets and the training loop reads."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = False  # True while a training step may be running
        self.stopping = False  # a stop is being carried out: further signals must not cut it short
        self.fitted = False  # fit has ended (the CLI tests next): a stop now loses only the test
        self._at = 0.0  # when the deferred request came

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping or (signum == self.signum and time.monotonic() - self._at < REPEAT_S):
            return  # the checkpoint and the KILLED status are being written, or this is the same request
        if self.signum is not None or not self.deferring:
            # Not between two training steps (setup, sanity check, testing, or a second signal): stop
            # at once, and never write a checkpoint from this state.
            self.signum, self.stopping = signum, True
            raise TrainingInterrupted(signum, forced=True, fitted=self.fitted)
        self.signum, self._at = signum, time.monotonic()
        print(
            f"\n{signal.Signals(signum).name} received: stopping after this batch and saving last.ckpt "
            "(send it again to stop at once, without a checkpoint)",
            flush=True,
        )


REQUEST = StopRequest()


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Route SIGINT and SIGTERM to :data:`REQUEST` for the duration (main thread only)."""
    REQUEST.signum, REQUEST.deferring, REQUEST.stopping, REQUEST.fitted = None, False, False, False
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, REQUEST.handle)
    try:
        yield REQUEST
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        REQUEST.signum, REQUEST.deferring, REQUEST.stopping, REQUEST.fitted = None, False, False, False


def is_clean_stop(exception: BaseException) -> bool:
    """A stop asked for by a signal, reached between two steps (so the state is consistent)."""
    if isinstance(exception, TrainingInterrupted):
        return not exception.forced
    return isinstance(exception, (SIGTERMException, StoreDown))


class Recovery(L.Callback):
    """Stop on a signal between two batches with ``last.ckpt``; carry the RNG state in checkpoints.

    Not Lightning's ``OnExceptionCheckpoint``: with one of those present, Lightning turns every
    ``fit()`` without a checkpoint into ``fit(ckpt_path="last")``, so a new run would silently resume
    whatever ``last.ckpt`` its folder holds. Resuming here is always asked for (``RESUME=``).
    """

    def __init__(self) -> None:
        self._rng: dict[str, Any] | None = None  # restored at the first resumed step

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        REQUEST.deferring = True
        # Only ours: Lightning's SIGTERM handler (added at each fit) broadcasts from inside the handler under DDP,
        # a collective out of step with the other ranks' (a hang, or a crash); _check agrees on the stop instead.
        signal.signal(signal.SIGTERM, REQUEST.handle)
        state, self._rng = self._rng, None
        if state:  # just before the first resumed step, after everything that set up the run
            version, internal, gauss = state["python"]
            random.setstate((version, tuple(internal), gauss))
            name, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
            torch.set_rng_state(state["torch"])
            if "torch.cuda" in state and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["torch.cuda"])

    def _check(self, trainer: L.Trainer) -> None:
        logger = run_logger(trainer)
        fault = logger.fault if logger is not None else None  # the tracking store failed (rank 0)
        requested = REQUEST.signum is not None or fault is not None
        if trainer.world_size > 1:  # every rank must stop at the same batch, or collectives hang
            requested = trainer.strategy.reduce_boolean_decision(requested, all=False)
        if requested:
            REQUEST.deferring, REQUEST.stopping = False, True
            raise fault or TrainingInterrupted(REQUEST.signum or signal.SIGTERM)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._check(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        REQUEST.deferring = False
        self._check(trainer)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        REQUEST.deferring = False
        if not (is_clean_stop(exception) and trainer.state.fn == "fit"):
            return
        checkpoint = trainer.checkpoint_callback
        folder = getattr(checkpoint, "dirpath", None) or Path(trainer.default_root_dir) / "checkpoints"
        path = str(Path(folder) / "last.ckpt")
        if isinstance(checkpoint, ModelCheckpoint):  # before saving: it is part of the saved state
            checkpoint.last_model_path = path  # resumed runs overwrite it; the logger uploads it
        try:
            trainer.save_checkpoint(path)
        except RunFault as err:  # a full disk: the run must still end, with its status
            print(err, file=sys.stderr, flush=True)
            return
        if trainer.is_global_zero:
            print(f"saved {path}", flush=True)

    def state_dict(self) -> dict[str, Any]:
        np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
        state: dict[str, Any] = {
            "python": list(random.getstate()),
            "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["torch.cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._rng = state_dict


class BestAndLastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (best by ``monitor``) with ``last.ckpt`` rewritten after every validation."""

    def __init__(self, *args: Any, save_last: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, save_last=save_last, **kwargs)

    def _refresh_last(self, trainer: L.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):  # skipped if just saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)
