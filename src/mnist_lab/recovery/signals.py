"""SIGINT and SIGTERM as a request to stop, honoured where stopping is safe.

While a training step runs, the first signal only sets a flag: :class:`StopOnSignal` stops at the
end of the batch, after the optimiser step, so the checkpoint it leaves is consistent. A second
signal stops at once. Outside training (loading data, testing, predicting) the first signal stops
at once: there is nothing to save.
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

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None or not self.deferring:
            self.signum = signum
            raise TrainingInterrupted(signum, forced=self.deferring)
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
    REQUEST.signum, REQUEST.deferring = None, False
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, REQUEST.handle)
    try:
        yield REQUEST
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        REQUEST.signum, REQUEST.deferring = None, False
