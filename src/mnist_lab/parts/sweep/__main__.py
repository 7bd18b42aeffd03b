"""An Optuna sweep over the CLI: each trial a training run, a child of the sweep's MLflow run.

    make sweep                          # configs/sweeps/mlp.yaml, storage sqlite:///mlruns/optuna.db
    make sweep RESUME=1                 # continue the study (same parent run) up to its n_trials
    make sweep JOBS=2 TRIALS=40         # two processes filling one study
    make sweep QUICK=1                  # a few trials of a few batches (tests, a smoke run)

Exit codes: 0 done (failed trials included), 2 a bad sweep file or storage, 128+n stopped by
signal n.
"""

import argparse
import os
import shlex
import sys
import warnings

import optuna

from mnist_lab.cli import CONFIG_DIR
from mnist_lab.errors import TrainingInterrupted, command
from mnist_lab.parallel import threads_per_job
from mnist_lab.parts.sweep.runner import (
    DEFAULT_STORAGE,
    best_run,
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
from mnist_lab.parts.sweep.spec import load_spec
from mnist_lab.parts.sweep.trial import PARENT_ATTR


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="make sweep", description=__doc__.splitlines()[0])
    p.add_argument(
        "--sweep", default=str(CONFIG_DIR / "sweeps" / "mlp.yaml"), help="the sweep file"
    )
    p.add_argument("--name", help="the study's name (default: the sweep file's `study:`)")
    p.add_argument(
        "--trials", type=int, help="n_trials: complete + pruned trials the study should hold"
    )
    p.add_argument("--jobs", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--resume", action="store_true", help="continue the study and its parent run")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="Optuna storage: any SQLAlchemy URL")
    p.add_argument(
        "--quick", action="store_true", help="the sweep file's `quick:` block: a few tiny trials"
    )
    p.add_argument("--data-dir", help="--data.data_dir for every trial")
    p.add_argument(
        "--experiment", help="MLflow experiment (default: the sweep file's, else `sweeps`)"
    )
    p.add_argument(
        "--best-run", action="store_true", help="print the newest such sweep's best run id"
    )
    p.add_argument(
        "extra", nargs="*", help="further LightningCLI arguments for every trial (after --)"
    )
    # set for JOBS workers: the parent run's id, and their share of trials
    p.add_argument("--worker-of", help=argparse.SUPPRESS)
    p.add_argument("--worker-trials", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def again(argv: list[str]) -> str:
    """The command that continues this sweep: the Makefile's with RESUME=1, or this one with
    --resume."""
    made = os.environ.get("TEMPLATE_COMMAND")
    if made:
        return f"{made} RESUME=1"
    return shlex.join(
        ["python", "-m", "mnist_lab.parts.sweep", *[a for a in argv if a != "--resume"], "--resume"]
    )


@command
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.INFO)
    # Optuna calls heartbeats and its matplotlib plots experimental; trials pass LightningCLI
    # `args` on purpose.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
    spec = load_spec(args.sweep, quick=args.quick)
    spec.n_trials = args.trials or spec.n_trials
    spec.experiment = args.experiment or spec.experiment
    extra = [*([f"--data.data_dir={args.data_dir}"] if args.data_dir else []), *args.extra]
    name = args.name or spec.study
    if args.best_run:  # `make register STUDY=<study>`
        print(best_run(name))
        return 0
    if args.worker_of:  # one of JOBS processes, started below: run a share of the trials
        study = make_study(spec, open_storage(args.storage, spec.heartbeat), name, resume=True)
        return optimize(study, spec, args.worker_trials, args.worker_of, extra)
    check_space(spec, extra)
    study = make_study(spec, open_storage(args.storage, spec.heartbeat), name, resume=args.resume)
    parent = open_parent(spec, name, resume=args.resume)
    code = 0
    with parent.life.spanning():  # whatever ends it, the parent run ends: never left RUNNING
        study.set_user_attr(PARENT_ATTR, parent.run_id)  # how any process finds the sweep's runs
        todo = remaining(study, spec.n_trials)
        jobs = max(1, min(args.jobs, todo))
        print(
            f"sweep {name!r}: {todo} trial(s) to run of {spec.n_trials}, "
            f"{jobs} process(es); {args.storage}"
        )
        if jobs == 1 and todo:
            code = optimize(study, spec, todo, parent.run_id, extra)
        elif todo:
            worker = [sys.executable, "-m", "mnist_lab.parts.sweep", "--worker-of", parent.run_id]
            shares = [todo // jobs + (i < todo % jobs) for i in range(jobs)]
            # argv last: it may hold `--`
            code = run_workers(
                [[*worker, f"--worker-trials={n}", *argv] for n in shares], threads_per_job(jobs)
            )
        fail_killed(study, wait_s=2 * spec.heartbeat)
        print(summarise(parent, study, spec.metric), flush=True)
        if code:  # a signal stopped the sweep, or killed a worker: its parent run ends KILLED
            raise TrainingInterrupted(
                code - 128, advice=f"the sweep is kept: continue it with {again(argv)}"
            )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
