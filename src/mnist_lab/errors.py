"""The errors a user can act on, and the one place that turns them into an ``error:`` line and an
exit code: 2 for a command or file to fix (no run was made), 1 for a fault during a run, 128 + n
for a stop by signal n."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class TemplateError(Exception):
    """An error the user can fix; printed as one line, without a traceback."""

    exit_code = 2


class ConfigError(TemplateError, ValueError):
    """A bad choice or value in the configuration (unknown name, out-of-range number)."""


class DataError(TemplateError):
    """Missing, truncated or corrupt dataset files."""


class RunFault(TemplateError):
    """The tracking store or the disk failed during a run; the message says what was kept where."""

    exit_code = 1


class DivergenceError(TemplateError):
    """The loss became NaN or infinite: training cannot go on from here."""

    exit_code = 1


class TrainingInterrupted(BaseException):
    """A signal stopped the run (like ``KeyboardInterrupt``, not an ``Exception``); ``forced``: it
    came where no consistent checkpoint can be written, so none was. ``advice``: what to do next."""

    run_status = "KILLED"

    def __init__(self, signum: int, forced: bool = False, advice: str = "") -> None:
        self.signum, self.forced, self.advice = signum, forced, advice
        super().__init__(
            f"stopped by {signal.Signals(signum).name}" + (f"; {advice}" if advice else "")
        )


def cause(err: BaseException | None) -> BaseException | None:
    """Ours, or ours wrapped by jsonargparse or Lightning while they built or ran something."""
    while err is not None and not isinstance(err, (TemplateError, TrainingInterrupted)):
        err = err.__cause__ or err.__context__
    return err


def report(err: BaseException, quiet: bool = False) -> NoReturn:
    """Print ``err`` as one line (a stop's line is its own) unless ``quiet``, and exit with its
    code; anything that is not ours goes on as it was raised."""
    found = cause(err)
    if found is None:
        raise err
    stop = isinstance(found, TrainingInterrupted)
    if not quiet:
        print(found if stop else f"error: {found}", file=sys.stderr, flush=True)
    raise SystemExit(128 + found.signum if stop else found.exit_code) from None


def command(main: Callable[..., int | None]) -> Callable[..., int]:
    """A command's ``main``: its errors become one line and their exit code; else it returns 0."""

    @functools.wraps(main)
    def run(*args: Any, **kwargs: Any) -> int:
        try:
            return main(*args, **kwargs) or 0
        except (TemplateError, TrainingInterrupted) as err:
            try:
                report(err)
            except SystemExit as stop:
                return int(stop.code or 0)

    return run
