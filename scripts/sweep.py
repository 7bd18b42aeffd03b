"""An Optuna sweep over the CLI: each trial a normal training run, a child of the sweep's MLflow run.

    make sweep                          # configs/sweeps/mlp.yaml, storage sqlite:///mlruns/optuna.db
    make sweep RESUME=1                 # continue the study (same parent run) up to its n_trials
    make sweep JOBS=2 TRIALS=40         # two processes filling one study
    make sweep QUICK=1                  # a few trials of a few batches (tests, a smoke run)

Exit codes: 0 done (failed trials included), 2 a bad sweep file or storage, 128+n stopped by signal n.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import optuna
import torch

from mnist_lab.errors import ConfigError
from mnist_lab.parallel import threads_per_job
from mnist_lab.sweep import load_spec
from mnist_lab.sweep.parent import open_parent, summarise
from mnist_lab.sweep.runner import (
    DEFAULT_STORAGE,
    HEARTBEAT_S,
    check_space,
    make_study,
    open_storage,
    optimize,
    remaining,
    run_workers,
    shares,
    signals_stop_sweep,
)
from mnist_lab.tracking.logger import resolve_tracking_uri

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", type=Path, default=REPO / "configs" / "sweeps" / "mlp.yaml", help="the sweep file")
    p.add_argument("--name", help="the study's name (default: the sweep file's `study:`)")
    p.add_argument("--trials", type=int, help="n_trials: complete + pruned trials the study should hold")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--resume", action="store_true", help="continue the study and its parent run")
    p.add_argument("--storage", default=os.environ.get("OPTUNA_STORAGE") or DEFAULT_STORAGE, help="Optuna RDB URL")
    p.add_argument("--quick", action="store_true", help="the sweep file's `quick:` block: a few tiny trials")
    p.add_argument("--data-dir", help="--data.data_dir for every trial")
    p.add_argument("--experiment", help="MLflow experiment (default: the sweep file's, else `sweeps`)")
    p.add_argument("--heartbeat", type=int, default=HEARTBEAT_S, help="seconds between a trial's heartbeats")
    p.add_argument("extra", nargs="*", help="further LightningCLI arguments for every trial (after --)")
    p.add_argument("--worker-of", help=argparse.SUPPRESS)  # set by the coordinator: the parent run id
    p.add_argument("--worker-trials", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(args: argparse.Namespace, spec, extra: list[str], name: str) -> int:
    """One of JOBS processes: load the study and run its share of trials."""
    torch.set_num_threads(threads_per_job(args.jobs))
    study = make_study(spec, open_storage(args.storage, args.heartbeat), name, resume=True, worker=args.worker_index)
    with signals_stop_sweep():
        try:
            optimize(study, spec, args.worker_trials, args.worker_of, resolve_tracking_uri(), extra)
        except KeyboardInterrupt as stop:
            return 128 + getattr(stop, "signum", signal.SIGINT)
    return 0


def coordinate(args: argparse.Namespace, spec, extra: list[str], name: str, argv: list[str]) -> int:
    """Create or continue the study and its parent run, run the trials here or in JOBS workers, summarise."""
    check_space(spec, extra)
    storage = open_storage(args.storage, args.heartbeat)
    study = make_study(spec, storage, name, resume=args.resume)
    todo = remaining(study, spec.n_trials)
    parent = open_parent(spec, study, args.storage, resume=args.resume)
    study.set_user_attr("mlflow_parent_run_id", parent.run_id)
    jobs = max(1, min(args.jobs, todo))
    print(f"sweep {name!r}: {todo} trial(s) to run of {spec.n_trials}, {jobs} process(es); storage {args.storage}")
    stopped: list[int] = []
    if todo and jobs == 1:
        torch.set_num_threads(threads_per_job(1))
        with signals_stop_sweep():
            try:
                optimize(study, spec, todo, parent.run_id, resolve_tracking_uri(), extra)
            except KeyboardInterrupt as stop:
                stopped = [getattr(stop, "signum", signal.SIGINT)]
    elif todo:
        script = [sys.executable, str(Path(__file__).resolve()), "--worker-of", parent.run_id]
        commands = [  # each worker's sampler seed differs (make_study)
            [*script, "--worker-trials", str(n), "--worker-index", str(i), *argv]  # argv last: it may hold `--`
            for i, n in enumerate(shares(todo, jobs))
        ]
        codes = run_workers(commands, threads_per_job(jobs), stopped.append)
        stopped = stopped or [c - 128 for c in codes if c > 128]
    print(summarise(parent, study, spec), flush=True)
    if stopped:
        parent.stopped_by = KeyboardInterrupt()  # a signal stopped the sweep: RunLogger ends the run KILLED
        parent.finalize("failed")
        print(f"sweep stopped; continue it with `make sweep RESUME=1` (or --resume --name {name})", file=sys.stderr)
        return 128 + stopped[0]
    parent.finalize("success")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        spec = load_spec(args.sweep, quick=args.quick)
        spec.n_trials = args.trials or spec.n_trials
        spec.experiment = args.experiment or spec.experiment
        extra = [*([f"--data.data_dir={args.data_dir}"] if args.data_dir else []), *args.extra]
        name = args.name or spec.study
        if args.worker_of:
            return worker(args, spec, extra, name)
        return coordinate(args, spec, extra, name, argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
