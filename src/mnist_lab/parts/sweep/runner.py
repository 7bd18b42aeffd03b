"""The Optuna study, shared in RDB storage by every process (``JOBS``, other machines), its parent
MLflow run, and the processes that run its trials; a killed process's trial, its heartbeat stale,
ends FAIL and its run KILLED."""

import contextlib
import io
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import optuna
from mlflow import MlflowClient
from optuna.visualization import matplotlib as plots

from mnist_lab.cli import main
from mnist_lab.errors import ConfigError
from mnist_lab.names import resolve_tracking_uri
from mnist_lab.parallel import job_env
from mnist_lab.parts.sweep.spec import SweepSpec
from mnist_lab.parts.sweep.trial import (
    RUN_ID_ATTR,
    SweepStopped,
    end_failed_runs,
    run_trial,
    set_shared_tag,
)
from mnist_lab.recovery import SIGNALS, handling
from mnist_lab.tracking import RunLogger
from mnist_lab.tracking.nesting import newest_tagged_run

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # what n_trials counts


def open_storage(url: str, heartbeat: float) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with a heartbeat every ``heartbeat`` s (a trial silent for twice as long
    is stale); a local sqlite file gets its folder and a 2-minute lock timeout."""
    engine = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # JOBS processes take turns writing the one file
        engine = {"connect_args": {"timeout": 120}}
    try:
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=heartbeat,
            heartbeat_stale_trial_callback=end_failed_runs,
        )
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's many errors all mean "cannot use this storage"
        raise ConfigError(
            f"cannot open the Optuna storage {url}: {type(err).__name__}: {err}"
        ) from None


def make_study(
    spec: SweepSpec, storage: optuna.storages.RDBStorage, name: str, resume: bool
) -> optuna.Study:
    """Create the study (with ``resume``, load it) with the sweep file's TPE sampler and median
    pruner. Only a new study takes the file's seed: a resumed or joined one draws at random, not
    the seed's first points again."""
    names = optuna.get_all_study_names(storage)
    exists = name in names
    if exists and not resume:
        raise ConfigError(
            f"study {name!r} already exists in {storage.url}: "
            "continue it with RESUME=1, or start another with NAME="
        )
    if resume and not exists:  # a resume never makes a study
        raise ConfigError(
            f"no study {name!r} to continue in {storage.url} "
            f"(its studies: {', '.join(names) or 'none'}); "
            "a QUICK=1 sweep is `<study>-quick`: give QUICK=1 (or NAME=) as its first command did"
        )
    sampler = optuna.samplers.TPESampler(
        **{**spec.sampler, "seed": None if exists else spec.sampler.get("seed")}
    )
    pruner = optuna.pruners.MedianPruner(**spec.pruner)
    study = optuna.create_study(
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        study_name=name,
        direction=spec.direction,
        load_if_exists=True,
    )
    if not exists:  # the sweep file's known-good points go first
        for params in spec.enqueue:
            study.enqueue_trial(params)
    return study


def fail_killed(study: optuna.Study, wait_s: float = 0) -> None:
    """Fail the trials of killed processes (stale heartbeats) and end their runs KILLED. ``wait_s``
    (this sweep's processes have ended): trials still RUNNING were a killed process's or another
    machine's; wait that long, until a killed one's heartbeat is stale, rather than leave its run
    RUNNING."""
    if wait_s and (
        running := study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    ):
        print(
            f"{len(running)} trial(s) still RUNNING: waiting {wait_s:g} s for their heartbeats",
            flush=True,
        )
        time.sleep(wait_s)
    optuna.storages.fail_stale_trials(study)
    end_failed_runs(study)  # also those another process failed without ending their runs


def remaining(study: optuna.Study, n_trials: int) -> int:
    """``n_trials`` minus the complete and pruned trials: failed ones, a killed process's included,
    run again."""
    fail_killed(study)
    return max(0, n_trials - len(study.get_trials(deepcopy=False, states=COUNTED)))


def check_space(spec: SweepSpec, extra: list[str]) -> None:
    """Parse a trial's command line (``--print_config``: nothing trains), so a path the CLI rejects
    fails now."""
    first = {
        name: kw["choices"][0] if kind == "categorical" else kw["low"]
        for name, (kind, kw) in spec.space.items()
    }
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            main([*spec.command(first, extra), "--print_config"])
    except SystemExit as stop:
        # the CLI's `error:` line, without its `--help` hint (which would name this script)
        if stop.code:
            message = err.getvalue().rpartition("error: ")[2].partition("\n")[0]
            raise ConfigError(f"the sweep's arguments do not parse: {message}") from None


def optimize(
    study: optuna.Study, spec: SweepSpec, n_trials: int, parent_run_id: str, extra: list[str]
) -> int:
    """Run up to ``n_trials`` here, fewer once the study (all processes) holds ``spec.n_trials``;
    return 0, or 128 + n when signal n stopped it (from now on SIGINT/SIGTERM stop the sweep; during
    a trial, via the CLI)."""

    def stop(signum: int, frame: object) -> None:
        raise SweepStopped(signal.Signals(signum))

    try:
        with handling(SIGNALS, stop):
            study.optimize(
                lambda trial: run_trial(trial, spec, parent_run_id, extra),
                n_trials,
                catch=(Exception,),  # a failed trial is recorded FAIL and the sweep goes on
                callbacks=[optuna.study.MaxTrialsCallback(spec.n_trials, states=COUNTED)],
                gc_after_trial=True,
            )
    except KeyboardInterrupt as stopped:
        return 128 + (stopped.args[0] if isinstance(stopped, SweepStopped) else signal.SIGINT)
    return 0


def run_workers(commands: list[list[str]], threads: int) -> int:
    """Run one process per command, each in its own session: a terminal's Ctrl-C reaches only this
    one, which passes each SIGINT/SIGTERM on once (a second stops a run without its checkpoint);
    return 0, or 128 + n for signal n (one this process received, or one that killed a worker:
    ``kill -9``)."""
    procs = [
        subprocess.Popen(command, env=job_env(threads), start_new_session=True)
        for command in commands
    ]
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        for proc in procs:
            proc.send_signal(signum)  # only to those still running

    with handling(SIGNALS, forward):
        # -n: by n
        codes = [128 - code if code < 0 else code for code in (proc.wait() for proc in procs)]
    return 128 + received[0] if received else max((code for code in codes if code > 128), default=0)


def open_parent(spec: SweepSpec, study: str, resume: bool) -> RunLogger:
    """Start the parent run, or with ``resume`` reopen the study's newest one (RUNNING again); log
    the sweep file."""
    tags = {"sweep.study": study, "sweep.role": "parent"}
    run = (
        newest_tagged_run(MlflowClient(resolve_tracking_uri()), spec.experiment, tags)
        if resume
        else None
    )
    logger = RunLogger(
        spec.experiment,
        f"sweep-{study}",
        tags=tags,
        log_model=False,
        run_id=run and run.info.run_id,
    )
    # opens (or reopens) the run
    logger.experiment.log_text(logger.run_id, spec.source, "sweep.yaml")
    return logger


def best_run(study: str) -> str:
    """The run of the best trial of the newest sweep named ``study`` (its parent's
    ``best.run_id``)."""
    client = MlflowClient(resolve_tracking_uri())
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`sweep.study` = '{study}' and tags.`sweep.role` = 'parent'"
    parents = (
        client.search_runs(experiments, query, order_by=["attributes.start_time DESC"])
        if experiments
        else []
    )
    if not parents:
        raise ConfigError(
            f"no sweep {study!r} in {resolve_tracking_uri()}: `make sweep NAME={study}` makes one"
        )
    if "best.run_id" not in parents[0].data.tags:
        raise ConfigError(
            f"sweep {study!r} has no complete trial yet: "
            f"`make sweep NAME={study} RESUME=1` runs more"
        )
    return parents[0].data.tags["best.run_id"]


def summarise(parent: RunLogger, study: optuna.Study, metric: str) -> str:
    """Log the trial counts, the best trial, Optuna's plots and (from 2 complete trials on) the
    parameter importances to the parent run; return a summary line."""
    client, run_id = parent.experiment, parent.run_id
    counts = Counter(trial.state.name.lower() for trial in study.get_trials(deepcopy=False))
    finished = counts["complete"] + counts["pruned"] + counts["fail"]
    for state in ("complete", "pruned", "fail", "running"):
        client.log_metric(run_id, f"trials/{state}", counts[state], step=finished)
    if not counts["complete"]:
        return f"{finished} trial(s) finished, none complete"
    best = study.best_trial
    client.log_metric(run_id, f"best/{metric}", best.value, step=finished)
    for key, value in {
        "trial": best.number,
        "run_id": best.user_attrs[RUN_ID_ATTR],
        **best.params,
    }.items():
        set_shared_tag(client, run_id, f"best.{key}", str(value))
    with tempfile.TemporaryDirectory() as tmp:  # the best trial's re-runnable config
        client.log_artifact(
            run_id,
            client.download_artifacts(best.user_attrs[RUN_ID_ATTR], "config.yaml", tmp),
            "best",
        )
    figures = {"optimization_history": plots.plot_optimization_history}
    note = f"skipped: {counts['complete']} complete trial(s), 2 needed"
    if counts["complete"] >= 2:
        try:
            for name, value in optuna.importance.get_param_importances(study).items():
                client.log_metric(run_id, f"importance/{name}", value)
            figures["param_importances"] = plots.plot_param_importances
            note = f"from {counts['complete']} complete trials (Optuna's default evaluator)"
        except (RuntimeError, ValueError) as err:  # e.g. every complete trial had the same params
            note = f"no importances: {err}"
    set_shared_tag(client, run_id, "sweep.importance_note", note)
    for name, plot in figures.items():
        figure = plot(study).figure
        client.log_figure(run_id, figure, f"plots/{name}.png", save_kwargs={"bbox_inches": "tight"})
        plt.close(figure)
    run = best.user_attrs[RUN_ID_ATTR]  # `make register STUDY=<study>` registers it
    return (
        f"best {metric} = {best.value:.4f} "
        f"(trial {best.number}, run {run}: {best.params}); {dict(counts)}"
    )
