"""SIGINT and SIGTERM as a request to stop, honoured where stopping is safe.

While a training step runs, the first signal only sets a flag: :class:`StopOnSignal` stops at the
end of the batch, after the optimiser step, so the checkpoint it leaves is consistent. A second
signal stops at once. Outside training (loading data, the sanity check, testing, predicting) the
first signal stops at once and no checkpoint is written. Once a stop is under way, further signals
are ignored, so the checkpoint and the run's KILLED status are always written in full.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from mnist_lab.errors import TrainingInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The process-wide stop flag the signal handler sets and the training loop reads."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.deferring = False  # True while a training step may be running
        self.stopping = False  # a stop is being carried out: further signals must not cut it short

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            return  # the checkpoint and the run's KILLED status are being written
        if self.signum is not None or not self.deferring:
            # Not between two training steps (setup, sanity check, testing, or a second signal): stop
            # at once, and never write a checkpoint from this state.
            self.signum, self.stopping = signum, True
            raise TrainingInterrupted(signum, forced=True)
        self.signum = signum
        print(
            f"\n{signal.Signals(signum).name} received: stopping after this batch and saving last.ckpt "
            "(send it again to stop at once, without a checkpoint)",
            flush=True,
        )


REQUEST = StopRequest()


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """Route SIGINT and SIGTERM to :data:`REQUEST` for the duration (main thread only)."""
    REQUEST.signum, REQUEST.deferring, REQUEST.stopping = None, False, False
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, REQUEST.handle)
    try:
        yield REQUEST
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        REQUEST.signum, REQUEST.deferring, REQUEST.stopping = None, False, False
