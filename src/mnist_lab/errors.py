"""User-facing errors: the CLI prints these as one clear line and exits non-zero, no traceback."""

import signal


class TemplateError(Exception):
    """Base class of the errors a user can fix by changing their command or files."""


class ConfigError(TemplateError, ValueError):
    """A bad choice or value in the configuration (unknown name, out-of-range number)."""


class DataError(TemplateError):
    """Missing, truncated or corrupt dataset files."""


class DivergenceError(TemplateError):
    """The loss became NaN or infinite: training cannot go on from here."""


class TrainingInterrupted(BaseException):
    """SIGINT or SIGTERM asked the run to stop; like ``KeyboardInterrupt``, not an ``Exception``.

    ``forced``: it stopped where no consistent checkpoint can be written (mid-step, while setting up,
    testing or predicting), so none was.
    """

    run_status = "KILLED"  # how its MLflow run ends (RunLogger.finalize)

    def __init__(self, signum: int, forced: bool = False) -> None:
        self.signum, self.forced = signum, forced
        super().__init__(f"stopped by {signal.Signals(signum).name}" + (" (no checkpoint)" if forced else ""))
