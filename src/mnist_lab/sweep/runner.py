"""Create or continue an Optuna study in RDB storage and run its trials, in one process or several.

The storage is a database (``sqlite:///mlruns/optuna.db`` by default, or any SQLAlchemy URL such as
PostgreSQL's): every process that opens the same study shares its trials, so ``JOBS=n`` processes
here, and processes on other machines, fill one study. Each process records a heartbeat per trial;
a trial whose process was killed stops beating and Optuna marks it FAIL (``fail_stale_trials``).
"""

from __future__ import annotations

import contextlib
import io
import signal
import socket
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import optuna

from mnist_lab.errors import ConfigError
from mnist_lab.parallel import job_env
from mnist_lab.sweep.spec import SweepSpec
from mnist_lab.sweep.trial import SweepStopped, run_trial

DEFAULT_STORAGE = "sqlite:///mlruns/optuna.db"
HEARTBEAT_S = 10  # a killed process's trial is marked FAIL 2 heartbeats after its last one
COUNTED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)  # what n_trials counts


def open_storage(url: str, heartbeat_s: int = HEARTBEAT_S) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage; a local sqlite file gets its folder and a long lock timeout (parallel jobs)."""
    engine: dict = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = {"connect_args": {"timeout": 120}}
    warnings.filterwarnings("ignore", "Argument ``heartbeat_interval``", optuna.exceptions.ExperimentalWarning)
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_s)
    except Exception as err:  # noqa: BLE001 - SQLAlchemy's many errors all mean "cannot use this storage"
        raise ConfigError(f"cannot open the Optuna storage {url}: {type(err).__name__}: {err}") from None


def make_study(
    spec: SweepSpec, storage: optuna.storages.RDBStorage, name: str, resume: bool, worker: int = 0
) -> optuna.Study:
    """Create the study (or with ``resume``, load it); TPE sampler, median pruner, from the sweep file.

    The sampler's seed is the sweep file's plus the trials the study already holds, the worker's
    index and, when joining an existing study, this host: a resumed sweep, each of ``JOBS`` workers
    and each machine draw new points instead of replaying the first ones.
    """
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            direction=spec.direction,
            pruner=optuna.pruners.MedianPruner(**spec.pruner),
            load_if_exists=resume,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(
            f"study {name!r} already exists in {storage.url}: continue it with RESUME=1, or start another with NAME="
        ) from None
    base = spec.sampler.get("seed")
    if base is not None:
        host = zlib.crc32(socket.gethostname().encode()) if study.trials else 0
        base = (int(base) + len(study.trials) + worker + host) % 2**32
    study.sampler = optuna.samplers.TPESampler(**{**spec.sampler, "seed": base})
    if not study.trials:  # a new study: the sweep file's known-good starting points go first
        for params in spec.enqueue:
            study.enqueue_trial(params)
    return study


def remaining(study: optuna.Study, n_trials: int) -> int:
    """Trials still to run: ``n_trials`` minus the complete and pruned ones (failed ones are retried)."""
    optuna.storages.fail_stale_trials(study)  # trials of killed processes: FAIL, once their heartbeat is stale
    return max(0, n_trials - len(study.get_trials(deepcopy=False, states=COUNTED)))


def check_space(spec: SweepSpec, extra: list[str]) -> None:
    """Parse one trial's command line (``--print_config``: nothing trains) so a bad path fails the sweep now."""
    from mnist_lab.cli import main

    first = {p.name: p.distribution.to_external_repr(0) for p in spec.space}
    args = [*spec.base_args(), *extra, *spec.overrides(first), "--print_config"]
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            main(args)
    except SystemExit as stop:
        if stop.code not in (0, None):
            message = err.getvalue().strip().removeprefix("error: ")
            raise ConfigError(f"the sweep's arguments do not parse: {message}") from None


@contextlib.contextmanager
def signals_stop_sweep() -> Iterator[None]:
    """Between trials, SIGTERM and SIGINT raise :class:`SweepStopped` (during one, the CLI stops it cleanly
    and :func:`run_trial` raises it)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise SweepStopped(signum, f"stopped by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def optimize(
    study: optuna.Study, spec: SweepSpec, n_trials: int, parent_run_id: str, tracking_uri: str, extra: list[str]
) -> None:
    """Run up to ``n_trials`` here; stop early once the whole study (all processes) has ``spec.n_trials``."""

    def objective(trial: optuna.Trial) -> float:
        return run_trial(trial, spec, parent_run_id, tracking_uri, extra)

    stop_at = optuna.study.MaxTrialsCallback(spec.n_trials, states=COUNTED)
    study.optimize(objective, n_trials=n_trials, catch=(Exception,), callbacks=[stop_at], gc_after_trial=True)


def shares(total: int, jobs: int) -> list[int]:
    """``total`` trials split over ``jobs`` processes as evenly as possible (no empty share)."""
    return [n for i in range(jobs) if (n := total // jobs + (i < total % jobs))]


def run_workers(commands: list[list[str]], threads: int, on_signal: Callable[[int], None]) -> list[int]:
    """Start one worker process per command, pass SIGTERM/SIGINT on to them, and wait for all."""
    import subprocess

    env = job_env(threads)
    # Own sessions: Ctrl-C reaches only this process, which passes it on once (a second SIGINT would
    # make a worker's run stop at once, without its checkpoint).
    procs = [subprocess.Popen(cmd, env=env, start_new_session=True) for cmd in commands]

    def forward(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return [proc.wait() for proc in procs]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
