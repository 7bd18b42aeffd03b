"""One Optuna trial = one ordinary training run of the CLI, as a child of the sweep's MLflow run.

The sampled values become CLI overrides after the sweep's base arguments, so a trial is exactly
``make train`` with those values. Optuna's own Lightning pruning callback (optuna-integration, which
imports ``lightning.pytorch`` and so works with Lightning 2.6) reports the metric after every
validation and raises ``TrialPruned``; :class:`TrialCallback` extends it to link the trial and the run.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import lightning as L
import optuna
from mlflow import MlflowClient
from optuna_integration import PyTorchLightningPruningCallback

from mnist_lab.sweep.spec import Param, SweepSpec
from mnist_lab.tracking import run_logger
from mnist_lab.tracking.nesting import PARENT_TAG

RUN_ID_ATTR = "mlflow_run_id"  # the trial's user attribute naming its MLflow run
STATE_TAG = "sweep.state"  # complete | pruned | failed


class TrialFailed(RuntimeError):
    """The CLI ended a trial with an error exit (a bad value, a diverging run): the sweep goes on."""


class SweepStopped(KeyboardInterrupt):
    """SIGTERM/SIGINT stops the sweep: like Ctrl-C, not an ``Exception``, so Optuna's ``catch`` lets it
    through (after recording the trial FAIL); ``signum`` gives the exit code, 128 + signum."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


class TrialCallback(PyTorchLightningPruningCallback):
    """Optuna's pruning callback, plus: tag the run as the trial's child run and keep the best value.

    A pruned run ends FINISHED (it did what the pruner asked), tagged ``sweep.state=pruned``.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, parent_run_id: str, maximize: bool = True) -> None:
        super().__init__(trial, monitor)
        self.parent_run_id, self.maximize = parent_run_id, maximize
        self.run_id: str | None = None
        self.client: MlflowClient | None = None
        self.best: float | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None or self.run_id == logger.run_id:
            return
        self.run_id, self.client = logger.run_id, logger.experiment
        for key, value in {
            PARENT_TAG: self.parent_run_id,
            "sweep.study": self._trial.study.study_name,
            "sweep.trial": str(self._trial.number),
        }.items():
            self.client.set_tag(self.run_id, key, value)
        self._trial.set_user_attr(RUN_ID_ATTR, self.run_id)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if not trainer.sanity_checking and score is not None and math.isfinite(value := float(score)):
            better = self.best is None or (value > self.best if self.maximize else value < self.best)
            self.best = value if better else self.best
        super().on_validation_end(trainer, pl_module)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, optuna.TrialPruned):
            exception.run_status = "FINISHED"  # RunLogger ends the run so: it did what the pruner asked


def suggest(trial: optuna.Trial, param: Param) -> Any:
    """Sample one parameter through Optuna's public ``suggest_*`` API."""
    d = param.distribution
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(param.name, d.choices)
    if isinstance(d, optuna.distributions.IntDistribution):
        return trial.suggest_int(param.name, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(param.name, d.low, d.high, step=d.step, log=d.log)


def record_state(callback: TrialCallback, experiment: str, tracking_uri: str, state: str, error: str = "") -> None:
    """Tag the child run with how the trial ended; a trial that failed before its run began gets one."""
    client = callback.client or MlflowClient(tracking_uri)
    if callback.run_id is None:  # the CLI stopped before the logger opened a run: record the failure anyway
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        tags = {PARENT_TAG: callback.parent_run_id, "sweep.trial": str(callback._trial.number)}
        run = client.create_run(experiment_id, tags=tags, run_name=f"trial-{callback._trial.number}")
        callback.run_id = run.info.run_id
        callback._trial.set_user_attr(RUN_ID_ATTR, callback.run_id)
        client.set_terminated(callback.run_id, "FAILED")
    client.set_tag(callback.run_id, STATE_TAG, state)
    if error:
        client.set_tag(callback.run_id, "error", error[:5000])


def run_trial(trial: optuna.Trial, spec: SweepSpec, parent_run_id: str, tracking_uri: str, extra: list[str]) -> float:
    """Sample, train through ``mnist_lab.cli.main``, and return the trial's best ``spec.metric``."""
    from mnist_lab.cli import main  # the CLI pulls in Lightning's whole stack: only when a trial runs

    warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")  # args is on purpose
    params = {p.name: suggest(trial, p) for p in spec.space}
    args = [*spec.base_args(), *extra, f"--trainer.logger.init_args.experiment_name={spec.experiment}"]
    args += spec.overrides(params)
    callback = TrialCallback(trial, spec.metric, parent_run_id, maximize=spec.direction == "maximize")
    print(f"trial {trial.number}: {params}", flush=True)
    try:
        main(args, callbacks=[callback])
        callback.check_pruned()  # under DDP the pruning decision travels through the storage: read it here
    except optuna.TrialPruned:
        record_state(callback, spec.experiment, tracking_uri, "pruned")
        raise
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
        record_state(callback, spec.experiment, tracking_uri, "failed", f"the CLI exited with code {code}")
        if code >= 128:  # a signal stopped the run: stop the sweep too (Optuna records the trial FAIL)
            raise SweepStopped(code - 128, f"trial {trial.number} stopped by a signal") from None
        raise TrialFailed(f"the CLI exited with code {code} (its error is above)") from None
    except Exception as err:
        record_state(callback, spec.experiment, tracking_uri, "failed", f"{type(err).__name__}: {err}")
        raise
    if callback.best is None:
        record_state(callback, spec.experiment, tracking_uri, "failed", f"no {spec.metric} was logged")
        raise TrialFailed(f"the run logged no {spec.metric}: the objective needs it after each validation")
    record_state(callback, spec.experiment, tracking_uri, "complete")
    return callback.best
