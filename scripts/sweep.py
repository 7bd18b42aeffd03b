"""An Optuna sweep over the CLI: each trial a normal training run, a child of the sweep's MLflow run.

    make sweep                          # configs/sweeps/mlp.yaml, storage sqlite:///mlruns/optuna.db
    make sweep RESUME=1                 # continue the study (same parent run) up to its n_trials
    make sweep JOBS=2 TRIALS=40         # two processes filling one study
    make sweep QUICK=1                  # a few trials of a few batches (tests, a smoke run)

Exit codes: 0 done (failed trials included), 2 a bad sweep file or storage, 128+n stopped by signal n.
"""

import argparse
import sys
import warnings
from pathlib import Path

import optuna

from mnist_lab.errors import ConfigError
from mnist_lab.parallel import threads_per_job
from mnist_lab.sweep.runner import (
    DEFAULT_STORAGE,
    check_space,
    fail_killed,
    make_study,
    open_parent,
    open_storage,
    optimize,
    remaining,
    run_workers,
    summarise,
)
from mnist_lab.sweep.spec import load_spec
from mnist_lab.sweep.trial import PARENT_ATTR

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sweep", type=Path, default=REPO / "configs" / "sweeps" / "mlp.yaml", help="the sweep file")
    p.add_argument("--name", help="the study's name (default: the sweep file's `study:`)")
    p.add_argument("--trials", type=int, help="n_trials: complete + pruned trials the study should hold")
    p.add_argument("--jobs", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--resume", action="store_true", help="continue the study and its parent run")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage: any SQLAlchemy URL")
    p.add_argument("--quick", action="store_true", help="the sweep file's `quick:` block: a few tiny trials")
    p.add_argument("--data-dir", help="--data.data_dir for every trial")
    p.add_argument("--experiment", help="MLflow experiment (default: the sweep file's, else `sweeps`)")
    p.add_argument("extra", nargs="*", help="further LightningCLI arguments for every trial (after --)")
    p.add_argument("--worker-of", help=argparse.SUPPRESS)  # set for JOBS workers: the parent run's id
    p.add_argument("--worker-trials", type=int, default=0, help=argparse.SUPPRESS)  # and their share of trials
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    # Optuna calls heartbeats and its matplotlib plots experimental; trials pass LightningCLI `args` on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
    try:
        spec = load_spec(args.sweep, quick=args.quick)
        spec.n_trials = args.trials or spec.n_trials
        spec.experiment = args.experiment or spec.experiment
        extra = [*([f"--data.data_dir={args.data_dir}"] if args.data_dir else []), *args.extra]
        name = args.name or spec.study
        if args.worker_of:  # one of JOBS processes, started below: run a share of the trials
            study = make_study(spec, open_storage(args.storage), name, resume=True)
            return optimize(study, spec, args.worker_trials, args.worker_of, extra)
        check_space(spec, extra)
        study = make_study(spec, open_storage(args.storage), name, resume=args.resume)
        parent = open_parent(spec, name, resume=args.resume)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    code = 0
    try:  # whatever ends it (an error, a signal), the parent run ends: FINISHED, FAILED or KILLED, never RUNNING
        study.set_user_attr(PARENT_ATTR, parent.run_id)  # how any process finds the sweep's runs
        todo = remaining(study, spec.n_trials)
        jobs = max(1, min(args.jobs, todo))
        print(f"sweep {name!r}: {todo} trial(s) to run of {spec.n_trials}, {jobs} process(es); storage {args.storage}")
        if jobs == 1 and todo:
            code = optimize(study, spec, todo, parent.run_id, extra)
        elif todo:
            script = [sys.executable, str(Path(__file__).resolve()), "--worker-of", parent.run_id]
            shares = [todo // jobs + (i < todo % jobs) for i in range(jobs)]  # argv last: it may hold `--`
            code = run_workers([[*script, f"--worker-trials={n}", *argv] for n in shares], threads_per_job(jobs))
        fail_killed(study, wait=True)
        print(summarise(parent, study, spec.metric), flush=True)
    except BaseException as err:
        parent.stopped_by = err  # RunLogger ends the run KILLED (a signal) or FAILED
        raise
    finally:
        if code:  # a signal stopped the sweep, or killed a worker: RunLogger ends the parent run KILLED
            parent.stopped_by = parent.stopped_by or KeyboardInterrupt()
            print(f"sweep stopped; continue it with `make sweep RESUME=1` (or --resume --name {name})", file=sys.stderr)
        parent.finalize("failed" if code or parent.stopped_by else "success")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
