"""A tracked run's life: what it is doing, what stopped it, and its one end with its status.

Lightning ends each trainer call (``fit``, then ``test``) with the logger's ``finalize``; a run
that spans several calls is held open by :meth:`RunLife.spanning` and ends when that exits.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lightning.pytorch.utilities.exceptions import SIGTERMException


def status_of(error: BaseException | None) -> str:
    """How a run ends: KILLED by a signal, else FINISHED or FAILED; an exception may say its own
    (``run_status``: a pruned sweep trial did what it was asked)."""
    if error is None:
        return "FINISHED"
    if isinstance(error, (KeyboardInterrupt, SIGTERMException)):
        return "KILLED"
    return getattr(error, "run_status", "FAILED")


class RunLife:
    """The state of one run, read and changed only here; ``end(status, error)`` writes its end."""

    def __init__(self, end: Callable[[str, BaseException | None], None], resumed: bool) -> None:
        self._end, self.resumed = end, resumed
        self.stage: str | None = None  # the trainer call under way: fit, validate, test, predict
        self.stopped_by: BaseException | None = None
        self.status: str | None = None  # once it has ended
        self._spans = 0

    @contextmanager
    def spanning(self) -> Iterator[RunLife]:
        """One run across the trainer calls inside; it ends when they do, once."""
        self._spans += 1
        try:
            yield self
        except BaseException as err:
            self._spans -= 1
            self.end(err)
            raise
        self._spans -= 1
        self.end(None)

    @contextmanager
    def doing(self, stage: str) -> Iterator[None]:
        self.stage = stage
        yield

    def finalized(self, lightning_status: str) -> None:
        """Lightning's end of one trainer call: the run's end, unless a span holds it open."""
        if not self._spans:
            failed = lightning_status == "failed"
            self.end(sys.exc_info()[1] or RuntimeError("failed") if failed else None)

    def end(self, error: BaseException | None) -> None:
        if self.status is None:
            self.stopped_by, self.status = error, status_of(error)
            self._end(self.status, error)
