"""The study: each claim of src/lab/study/claims as a grid x seeds, nested in one MLflow run.

make compare SEEDS=3 JOBS=2    # every claim, 3 seeds -> reports/activation_study.md
make compare CLAIM=saturation  # one claim (several: CLAIM='saturation init')
make compare QUICK=1           # a few batches per run, 1 seed -> outputs/study/activation_study.md
# rebuild a past study's report from MLflow:
python scripts/activation_study.py --report-only <study id>
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import torch
from mlflow import MlflowClient

from lab.study import report
from lab.study.claims import CLAIMS, Claim, select
from lab.study.grid import QUICK_ARGS, Job, command
from lab.study.results import collect, find_parent
from lab.study.runner import cost_s, estimate_s, jobs_for, run_all

from mnist_lab.errors import ConfigError
from mnist_lab.names import resolve_tracking_uri
from mnist_lab.recovery import SIGNALS, handling
from mnist_lab.tracking.logger import RunLogger

FULL_REPORT = Path("reports/activation_study.md")
# a quick study never overwrites the shipped report
QUICK_REPORT = Path("outputs/study/activation_study.md")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="a few batches per run and 1 seed (tests, a smoke check)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes training runs in parallel",
    )
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "data/"))
    p.add_argument(
        "--claim",
        nargs="+",
        metavar="NAME",
        help=f"claims to run (default all): {', '.join(CLAIMS)}",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="seeds per configuration: 42, 43, ... (default 5; quick 1)",
    )
    p.add_argument("--seed-list", type=int, nargs="+", help="explicit seeds instead of --seeds")
    p.add_argument("--first-seed", type=int, default=42)
    p.add_argument("--experiment", default="activation-study")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"report path (default {FULL_REPORT}; quick: {QUICK_REPORT})",
    )
    p.add_argument(
        "--plan", action="store_true", help="print the planned runs and time, run nothing"
    )
    p.add_argument(
        "--report-only",
        metavar="STUDY_ID",
        help="rebuild the report of an earlier study from MLflow",
    )
    p.add_argument(
        "extra", nargs="*", help="further LightningCLI arguments for every run (after --)"
    )
    args = p.parse_args(argv)
    count = args.seeds if args.seeds is not None else (1 if args.quick else 5)
    args.seeds = args.seed_list or list(range(args.first_seed, args.first_seed + count))
    if not args.report_only:  # --report-only picks the default from the study it rebuilds
        args.out = args.out or (QUICK_REPORT if args.quick else FULL_REPORT)
    if args.quick:
        args.extra = [*QUICK_ARGS, *args.extra]
    return args


def cpu_name() -> str:
    """The processor's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def diverged(client: MlflowClient, parent_id: str) -> set[str]:
    """The study's runs that diverged (the CLI's ``DivergenceError``): an outcome some claims count
    (a learning rate too high), not a broken run."""
    experiment = client.get_run(parent_id).info.experiment_id
    failed = client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'FAILED'"
    )
    return {
        r.info.run_name
        for r in failed
        if r.data.tags.get("error", "").startswith("DivergenceError")
    }


def describe(
    args: argparse.Namespace,
    argv: list[str] | None,
    study_id: str,
    runs: int,
    failed: int,
    wall: float,
    nan: int = 0,
) -> str:
    """The report's header: what ran, how long it took, on what, and where MLflow holds it."""
    invocation = " ".join(
        ["python", "scripts/activation_study.py", *(sys.argv[1:] if argv is None else argv)]
    )
    return (
        f"Study `{study_id}`: {runs} runs ({nan} diverged, {failed} failed otherwise), seeds "
        f"{args.seeds}{' (quick mode: a few batches per run)' if args.quick else ''}.\n\nCommand: "
        f"`{invocation}`  \nWall time: {wall / 60:.1f} min with {args.jobs} parallel job(s) on "
        f"{os.cpu_count()} CPU core(s) ({cpu_name()}), torch {torch.__version__}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d}.  \nMLflow experiment `{args.experiment}`: the "
        f"parent run `study-{study_id}` holds one nested run per configuration and seed. Rebuild "
        f"this report with `python scripts/activation_study.py --report-only {study_id}`."
    )


def publish(
    client: MlflowClient, parent_id: str, claims: list[Claim], header: str, out: Path
) -> int:
    """Read the children back with ``MlflowClient.search_runs``, write the report and plots, log
    them to the parent."""
    parent = client.get_run(parent_id)
    records = collect(client, parent, {c.name: c.metrics for c in claims})
    images = report.write(claims, records, header, out)
    client.log_artifact(parent_id, str(out))
    for image in images:
        client.log_artifact(parent_id, str(image), out.stem)
    return len(records)


def rebuild(args: argparse.Namespace) -> int:
    """Write an earlier study's report again (new plots, same runs) from what MLflow holds."""
    client = MlflowClient(resolve_tracking_uri())
    parent = find_parent(client, args.experiment, args.report_only)
    if parent is None:
        print(
            f"error: no study {args.report_only!r} in experiment {args.experiment!r}",
            file=sys.stderr,
        )
        return 2
    if args.out is None:  # a quick study's report never lands on the shipped one
        args.out = QUICK_REPORT if parent.data.params.get("quick") == "True" else FULL_REPORT
    names = parent.data.tags.get("study.claims", "").split(",")
    claims = select(args.claim or [n for n in names if n in CLAIMS])
    n = publish(
        client, parent.info.run_id, claims, parent.data.tags.get("study.header", ""), args.out
    )
    print(f"rebuilt {args.out} ({n} runs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        claims = select(args.claim)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.report_only:
        return rebuild(args)

    jobs: list[Job] = jobs_for(claims, args.seeds)
    args.jobs = max(1, min(args.jobs, len(jobs)))
    minutes = estimate_s(claims, args.seeds, args.jobs, args.quick) / 60
    print(
        f"planned: {len(jobs)} runs ({', '.join(f'{c.name} {len(c.variants)}' for c in claims)} "
        f"configurations x {len(args.seeds)} seed(s)) in {args.jobs} worker process(es): about "
        f"{minutes:.0f} min -> {args.out}",
        flush=True,
    )
    if args.plan:
        return 0

    study_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    # The parent run opens first: it creates the store and the experiment before parallel runs
    # race to.
    parent = RunLogger(
        experiment_name=args.experiment,
        run_name=f"study-{study_id}",
        tags={
            "study": study_id,
            "study.parent": "true",
            "study.claims": ",".join(c.name for c in claims),
        },
        log_model=False,
    )
    client: MlflowClient = parent.experiment
    parent.log_hyperparams(
        {"runs": len(jobs), "seeds": args.seeds, "jobs": args.jobs, "quick": args.quick}
    )
    by_name = {c.name: c for c in claims}

    def cli(job: Job) -> list[str]:
        return command(
            job,
            study_id=study_id,
            parent_run_id=parent.run_id,
            experiment=args.experiment,
            data_dir=args.data_dir,
            claim_args=by_name[job.claim].args,
            extra=args.extra,
        )

    def stop(signum: int, frame: object) -> None:  # Ctrl-C, SIGTERM or SIGHUP, to this or its group
        raise KeyboardInterrupt(signum)

    start = time.perf_counter()
    try:
        with handling(SIGNALS, stop), parent.life.spanning():  # the parent never stays RUNNING
            cost = {c.name: cost_s(c, args.quick) for c in claims}
            logs = args.out.parent / "logs" / study_id
            failures = run_all(jobs, cli, args.jobs, logs, lambda job: cost[job.claim])
            wall = time.perf_counter() - start
            nan = diverged(client, parent.run_id) if failures else set()
            failures = [label for label in failures if label not in nan]
            if nan:
                print(
                    f"{len(nan)} run(s) diverged (NaN loss): outcomes the claims count, not "
                    "failures"
                )
            if failures:
                print(f"{len(failures)} failed run(s); logs in {logs}", file=sys.stderr)
            header = describe(args, argv, study_id, len(jobs), len(failures), wall, len(nan))
            client.set_tag(parent.run_id, "study.header", header)
            n = publish(client, parent.run_id, claims, header, args.out)
            if failures:
                raise RuntimeError(f"{len(failures)} run(s) failed")
    # the workers' runs ended KILLED; queued ones never started
    except KeyboardInterrupt as stopped:
        print(f"study {study_id} stopped; its finished runs stay in MLflow", file=sys.stderr)
        return 128 + (stopped.args[0] if stopped.args else 2)
    except RuntimeError:
        return 1
    print(f"wrote {args.out} ({n} runs) in {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
