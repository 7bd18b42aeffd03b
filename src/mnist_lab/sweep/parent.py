"""The sweep's parent MLflow run: opened once per study, reopened by its tag on resume, summarised at the end.

It holds what a sweep answers: the best value (``best/<metric>``), the best trial's params (tags
``best.<name>``) and its re-runnable ``best/config.yaml``, the trial counts, Optuna's optimisation
history and parameter importances (``plots/*.png``, ``importance/<name>``), and the sweep file.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import matplotlib
import optuna
from mlflow import MlflowClient

from mnist_lab.sweep.spec import SweepSpec
from mnist_lab.sweep.trial import RUN_ID_ATTR, STATE_TAG
from mnist_lab.tracking import RunLogger
from mnist_lab.tracking.logger import resolve_tracking_uri
from mnist_lab.tracking.nesting import newest_tagged_run

matplotlib.use("Agg")
STUDY_TAG, ROLE_TAG = "sweep.study", "sweep.role"
States = optuna.trial.TrialState


def find_parent(client: MlflowClient, experiment: str, study: str) -> str | None:
    """The newest parent run of ``study`` in ``experiment``, by its tags."""
    run = newest_tagged_run(client, experiment, {STUDY_TAG: study, ROLE_TAG: "parent"})
    return run.info.run_id if run else None


def open_parent(spec: SweepSpec, study: optuna.Study, storage_url: str, resume: bool) -> RunLogger:
    """Start the parent run, or with ``resume`` reopen the one tagged with this study (RUNNING again)."""
    client = MlflowClient(resolve_tracking_uri())
    run_id = find_parent(client, spec.experiment, study.study_name) if resume else None
    if run_id is not None:
        logger = RunLogger(experiment_name=spec.experiment, log_model=False, run_id=run_id)
    else:
        tags = {STUDY_TAG: study.study_name, ROLE_TAG: "parent", "sweep.storage": storage_url}
        name = f"sweep-{study.study_name}"
        logger = RunLogger(experiment_name=spec.experiment, run_name=name, tags=tags, log_model=False)
    logger.experiment.log_text(logger.run_id, spec.source, "sweep.yaml")  # opens (or reopens) the run
    return logger


def _counts(study: optuna.Study) -> dict[str, int]:
    trials = study.get_trials(deepcopy=False)
    return {state.name.lower(): sum(t.state == state for t in trials) for state in States}


def close_stale_children(client: MlflowClient, study: optuna.Study) -> None:
    """A trial whose process was killed outright is FAIL in Optuna (stale heartbeat), but its run was
    left RUNNING: end it KILLED and tag it failed."""
    for trial in study.get_trials(deepcopy=False, states=(States.FAIL,)):
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if run_id and client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, STATE_TAG, "failed")
            client.set_tag(run_id, "error", "its process was killed: Optuna marked the trial FAIL (stale heartbeat)")
            client.set_terminated(run_id, "KILLED")


def summarise(logger: RunLogger, study: optuna.Study, spec: SweepSpec) -> str:
    """Log the best trial, counts, plots and importances to the parent; return a one-line summary."""
    client, run_id = logger.experiment, logger.run_id
    close_stale_children(client, study)
    counts = _counts(study)
    finished = counts["complete"] + counts["pruned"] + counts["fail"]
    for state in ("complete", "pruned", "fail", "running"):
        client.log_metric(run_id, f"trials/{state}", counts[state], step=finished)
    if counts["complete"] == 0:
        client.set_tag(run_id, "sweep.note", "no trial completed yet: no best trial")
        return f"{finished} trial(s) finished, none complete"
    best = study.best_trial
    client.log_metric(run_id, f"best/{spec.metric}", float(best.value), step=finished)
    client.set_tag(run_id, "best.trial", str(best.number))
    for name, value in best.params.items():
        client.set_tag(run_id, f"best.{name}", str(value))
    best_run = best.user_attrs.get(RUN_ID_ATTR)
    if best_run:
        client.set_tag(run_id, "best.run_id", best_run)
        with tempfile.TemporaryDirectory() as tmp:
            config = client.download_artifacts(best_run, "config.yaml", tmp)
            client.log_artifact(run_id, config, "best")
    _plots(client, run_id, study)
    return f"best {spec.metric} = {best.value:.4f} (trial {best.number}: {best.params}); {counts}"


def _plots(client: MlflowClient, run_id: str, study: optuna.Study) -> None:
    """Optuna's matplotlib history and importance plots; importances need two complete trials."""
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    with tempfile.TemporaryDirectory() as tmp:
        figures = {"optimization_history": vis.plot_optimization_history}
        complete = len(study.get_trials(deepcopy=False, states=(States.COMPLETE,)))
        if complete >= 2:
            try:
                importances = optuna.importance.get_param_importances(study)
            except (RuntimeError, ValueError) as err:  # e.g. every complete trial had the same params
                client.set_tag(run_id, "sweep.importance_note", f"no importances: {err}")
            else:
                for name, value in importances.items():
                    client.log_metric(run_id, f"importance/{name}", value)
                figures["param_importances"] = vis.plot_param_importances
                client.set_tag(run_id, "sweep.importance_note", f"from {complete} complete trials (fANOVA)")
        else:
            client.set_tag(run_id, "sweep.importance_note", f"skipped: {complete} complete trial(s), 2 needed")
        for name, plot in figures.items():
            path = Path(tmp) / f"{name}.png"
            axes = plot(study)
            axes.figure.tight_layout()
            axes.figure.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(axes.figure)
            client.log_artifact(run_id, str(path), "plots")
