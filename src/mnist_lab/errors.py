"""User-facing errors: the CLI prints these as one clear line and exits non-zero, no traceback."""

from __future__ import annotations

import signal
from typing import Any


class TemplateError(Exception):
    """Base class of the errors a user can fix by changing their command or files."""


class ConfigError(TemplateError, ValueError):
    """A bad choice or value in the configuration (unknown name, out-of-range number)."""


class DataError(TemplateError):
    """Missing, truncated or corrupt dataset files."""


class RunFault(TemplateError):
    """The tracking store or the disk failed during a run (exit code 1); the message says what was kept where."""


class DivergenceError(TemplateError):
    """The loss became NaN or infinite: training cannot go on from here."""

    @classmethod
    def at(cls, trainer: Any, loss: float) -> DivergenceError:
        """Where it happened, at which learning rate, what to try, which checkpoint is the last good one."""
        group = trainer.optimizers[0].param_groups[0] if trainer.optimizers else {}
        lr, base = group.get("lr", float("nan")), group.get("initial_lr", group.get("lr", float("nan")))
        kept = getattr(trainer.checkpoint_callback, "last_model_path", "")
        return cls(
            f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): the loss is {loss} "
            f"at learning rate {lr:.3g} (base {base:.3g}). Try a smaller LR (e.g. LR={base / 10:.3g}), gradient "
            "clipping (--trainer.gradient_clip_val=1.0), batch norm (BN=true) or a smaller init; "
            + (f"the last good checkpoint is {kept}" if kept else "no checkpoint was saved before it")
        )


class TrainingInterrupted(BaseException):
    """SIGINT or SIGTERM asked the run to stop; like ``KeyboardInterrupt``, not an ``Exception``.

    ``forced``: it stopped where no consistent checkpoint can be written (mid-step, while setting up,
    testing or predicting), so none was. ``fitted``: fit had ended, so only the test after it was cut.
    """

    run_status = "KILLED"  # how its MLflow run ends (RunLogger.finalize)

    def __init__(self, signum: int, forced: bool = False, fitted: bool = False) -> None:
        self.signum, self.forced, self.fitted = signum, forced, fitted
        how = " during the test after fit (its checkpoints kept)" if fitted else " (no checkpoint)" if forced else ""
        super().__init__(f"stopped by {signal.Signals(signum).name}{how}")
