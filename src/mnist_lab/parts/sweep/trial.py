"""One Optuna trial: ``make train`` in-process (``mnist_lab.cli.main``), the sampled values its
last arguments."""

import json
import math
import os
import signal

import lightning as L
import optuna
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from optuna_integration import PyTorchLightningPruningCallback

from mnist_lab.cli import main
from mnist_lab.names import resolve_tracking_uri
from mnist_lab.parts.sweep.spec import SweepSpec
from mnist_lab.tracking import run_logger
from mnist_lab.tracking.nesting import PARENT_TAG, tagged_runs

RUN_ID_ATTR = "mlflow_run_id"  # the trial's user attribute naming its MLflow run
PARENT_ATTR = "mlflow_parent_run_id"  # the study's user attribute naming the sweep's parent run


class SweepStopped(KeyboardInterrupt):
    """Signal ``args[0]`` stops the sweep; being no ``Exception``, Optuna records the trial FAIL and
    lets it through."""


class TrialCallback(PyTorchLightningPruningCallback):
    """The pruning callback that also names the trial's run in Optuna; a pruned run ends
    FINISHED."""

    def __init__(
        self, trial: optuna.Trial, monitor: str, experiment: str, tags: dict[str, str]
    ) -> None:
        super().__init__(trial, monitor)
        self.trial, self.experiment, self.tags = trial, experiment, tags
        self.run_id: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is not None and self.run_id is None:
            self.run_id = logger.run_id
            # for the summary and a killed process's cleanup
            self.trial.set_user_attr(RUN_ID_ATTR, self.run_id)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, optuna.TrialPruned):
            # how RunLogger ends the run: it did what the pruner asked
            exception.run_status = "FINISHED"

    def end(self, state: str, error: str = "") -> None:
        """Tag the run with how the trial ended; a trial that failed before its run began gets a
        FAILED one."""
        client = MlflowClient(resolve_tracking_uri())
        if self.run_id is None:
            # the parent made it
            experiment_id = client.get_experiment_by_name(self.experiment).experiment_id
            run = client.create_run(
                experiment_id, tags=self.tags, run_name=f"trial-{self.trial.number}"
            )
            self.run_id = run.info.run_id
            client.set_terminated(self.run_id, "FAILED")
            self.trial.set_user_attr(RUN_ID_ATTR, self.run_id)
        client.set_tag(self.run_id, "sweep.state", state)
        if error:
            client.set_tag(self.run_id, "error", error[:5000])


def set_shared_tag(client: MlflowClient, run_id: str, key: str, value: str) -> None:
    """A tag another sweep process may set at the same moment (each host summarises the parent):
    the store refuses the second insert of a key, and a second try updates it instead."""
    try:
        client.set_tag(run_id, key, value)
    except MlflowException:
        client.set_tag(run_id, key, value)


def end_failed_runs(study: optuna.Study, *_: object) -> None:
    """End KILLED, tagged failed, the child runs still RUNNING whose trial Optuna failed: their
    process was killed (a stale heartbeat). Optuna's stale-trial callback (any process, any
    machine), and the sweep's start and end."""
    if not (parent := study.user_attrs.get(PARENT_ATTR)):
        return
    client = MlflowClient(resolve_tracking_uri())
    failed = {
        str(t.number)
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    }
    for run in tagged_runs(
        client, client.get_run(parent).info.experiment_id, {PARENT_TAG: parent}, "RUNNING"
    ):
        if (number := run.data.tags.get("sweep.trial")) in failed:
            run_id = run.info.run_id
            set_shared_tag(client, run_id, "sweep.state", "failed")
            set_shared_tag(
                client,
                run_id,
                "error",
                "its process was killed: Optuna failed the trial (stale heartbeat)",
            )
            client.set_terminated(run_id, "KILLED")
            print(
                f"trial {number}: its process was killed; its run {run_id} ended KILLED", flush=True
            )


def run_trial(trial: optuna.Trial, spec: SweepSpec, parent_run_id: str, extra: list[str]) -> float:
    """Sample (Optuna's public ``suggest_<type>``), train, and return the best ``spec.metric`` the
    pruner saw."""
    params = {
        name: getattr(trial, f"suggest_{kind}")(name, **kw)
        for name, (kind, kw) in spec.space.items()
    }
    tags = {
        PARENT_TAG: parent_run_id,
        "sweep.study": trial.study.study_name,
        "sweep.trial": str(trial.number),
    }
    callback = TrialCallback(trial, spec.metric, spec.experiment, tags)
    print(f"trial {trial.number}: {params}", flush=True)
    state, error = "failed", ""
    # MLflow tags the run with them as it creates it: nested
    os.environ["MLFLOW_RUN_CONTEXT"] = json.dumps(tags)
    # from the start, so a process killed at any point leaves a child run end_failed_runs finds
    try:
        main(spec.command(params, extra), callbacks=[callback])
        # under DDP the pruning decision travels through the storage: read it here
        callback.check_pruned()
        reported = trial.study.get_trials(deepcopy=False)[trial.number].intermediate_values.values()
        if not (values := [value for value in reported if math.isfinite(value)]):
            raise RuntimeError(
                f"the run logged no {spec.metric}: the objective needs it after each validation"
            )
        state = "complete"
        return max(values) if spec.direction == "maximize" else min(values)
    except optuna.TrialPruned:
        state = "pruned"
        raise
    except SystemExit as stop:
        error = f"the CLI exited with code {stop.code}"
        # signal code - 128 stopped the run, and the sweep
        if isinstance(stop.code, int) and stop.code >= 128:
            raise SweepStopped(signal.Signals(stop.code - 128)) from None
        raise RuntimeError(f"{error} (its error is above)") from None
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
        raise
    finally:
        os.environ.pop("MLFLOW_RUN_CONTEXT")
        callback.end(state, error)
