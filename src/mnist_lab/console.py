"""Output is never a reason to stop training: a closed pipe (``| head``) or a closed terminal stops
the printing, not the run."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO


class Console:
    """``sys.stdout`` or ``sys.stderr``; once a write fails (the reader left, the terminal went
    away, the disk is full), its descriptor points at ``/dev/null``, for C code and children too."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)

    def _gone(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self.stream.fileno())
            os.close(null)

    def write(self, text: str) -> int:
        try:
            return self.stream.write(text)
        except OSError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError:
            self._gone()
            with contextlib.suppress(OSError):
                self.stream.flush()  # what was buffered now goes to /dev/null


def keep_output_harmless() -> None:
    """Wrap ``sys.stdout`` and ``sys.stderr`` once (before any progress bar takes a reference)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, Console):
            setattr(sys, name, Console(stream))
