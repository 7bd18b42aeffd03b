"""The activation study: every activation x {default, recommended init} x {BN off, on}, one MLflow run each.

    make compare                 # the full grid (60 runs), JOBS=<parallel processes>
    make compare QUICK=1         # every activation, recommended init, no BN, a fraction of an epoch

Writes reports/activation_study.md with PNG plots beside it and logs them to a summary run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import torch
from mlflow import MlflowClient

from mnist_lab.models.components.activations import ACTIVATIONS
from mnist_lab.study.grid import REPO, Config, command, grid
from mnist_lab.study.report import markdown, plots
from mnist_lab.study.results import collect
from mnist_lab.tracking.logger import RunLogger, resolve_tracking_uri


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="reduced grid for tests and CI (a few minutes)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="configurations run in parallel")
    p.add_argument("--data-dir", default=os.environ.get("DATA_DIR", "data/"))
    p.add_argument("--activations", nargs="+", default=list(ACTIVATIONS), choices=list(ACTIVATIONS))
    p.add_argument("--inits", nargs="+", default=None, choices=["default", "recommended"])
    p.add_argument("--batch-norm", nargs="+", default=None, choices=["off", "on"])
    p.add_argument("--seeds", nargs="+", type=int, default=[42])
    p.add_argument("--epochs", type=int, default=None, help="default 3 (quick: 1)")
    p.add_argument("--experiment", default="activation-study")
    p.add_argument("--out", type=Path, default=REPO / "reports" / "activation_study.md")
    p.add_argument("--report-only", metavar="STUDY_ID", help="rebuild the report of an earlier study from MLflow")
    p.add_argument("extra", nargs="*", help="further LightningCLI arguments for every run (after --)")
    args = p.parse_args(argv)
    args.inits = args.inits or (["recommended"] if args.quick else ["default", "recommended"])
    args.batch_norm = args.batch_norm or (["off"] if args.quick else ["off", "on"])
    args.epochs = args.epochs or (1 if args.quick else 3)
    if args.quick:
        args.extra = ["--trainer.limit_train_batches=0.25", "--diagnostics.every_n_steps=25", *args.extra]
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


def run_one(cmd: list[str], threads: int, log_dir: Path, config: Config) -> tuple[Config, int, float]:
    """Run one configuration as its own process; its output goes to a log file."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = log_dir / (config.label.replace("/", "_") + ".log")
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, check=False).returncode
    return config, code, time.perf_counter() - start


def run_grid(args: argparse.Namespace, study_id: str, configs: list[Config], jobs: int) -> tuple[list[str], float]:
    """Run every configuration, ``jobs`` at a time; return the failed labels and the wall time."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log_dir = args.out.parent / "logs" / study_id
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"study {study_id}: {len(configs)} runs, {jobs} in parallel x {threads} threads", flush=True)
    start = time.perf_counter()
    failures = []
    with ThreadPoolExecutor(jobs) as pool:
        futures = [
            pool.submit(
                run_one,
                command(
                    c,
                    study_id=study_id,
                    experiment=args.experiment,
                    data_dir=args.data_dir,
                    epochs=args.epochs,
                    extra=args.extra,
                ),
                threads,
                log_dir,
                c,
            )
            for c in configs
        ]
        for future in futures:
            config, code, seconds = future.result()
            print(f"  {'ok  ' if code == 0 else 'FAIL'} {config.label:<40} {seconds:6.1f} s", flush=True)
            if code != 0:
                failures.append(config.label)
    if failures:
        print(f"failed runs (logs in {log_dir}): {', '.join(failures)}", file=sys.stderr)
    return failures, time.perf_counter() - start


def describe(
    args: argparse.Namespace, argv: list[str] | None, study_id: str, n_runs: int, failed: int, jobs: int, wall: float
) -> str:
    """The report's header: what ran, how long it took, on what."""
    invocation = " ".join(["python", "scripts/activation_study.py", *(sys.argv[1:] if argv is None else argv)])
    return (
        f"Study `{study_id}`: {n_runs} runs ({failed} failed), {args.epochs} epoch(s) each, "
        f"seeds {args.seeds}, MLP `configs/net/mlp.yaml` + `configs/study.yaml`.\n\n"
        f"Command: `{invocation}`  \nWall time: {wall / 60:.1f} min with {jobs} parallel job(s) on "
        f"{os.cpu_count()} CPU core(s) ({cpu_name()}), torch {torch.__version__}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d}.  \nMLflow experiment `{args.experiment}`, filter "
        f"`tags.study = '{study_id}'`.\n\n"
        "Columns: test accuracy of the best-val checkpoint; mean training loss of the last epoch; ratio of the first "
        "to the last layer's weight-gradient norm at step 0 (<< 1: vanishing); fraction of hidden units constant "
        "over a fixed validation batch at the end; mean hidden activation at the end; first epoch with val acc >= 97%."
    )


def write_report(client: MlflowClient, summary: str, experiment_id: str, study_id: str, header: str, out: Path) -> int:
    """Collect the study's runs, write the Markdown and plots, log them to the ``summary`` run."""
    rows = collect(client, experiment_id, study_id)
    images = plots(rows, out.parent / "activation_study")
    out.write_text(markdown(rows, header, images, out.parent))
    client.log_artifact(summary, str(out))
    for image in images:
        client.log_artifact(summary, str(image), "activation_study")
    return len(rows)


def rebuild_report(args: argparse.Namespace) -> int:
    """Write the report of an earlier study again (new plots, same runs) from what MLflow holds."""
    client = MlflowClient(resolve_tracking_uri())
    experiment = client.get_experiment_by_name(args.experiment)
    query = f"tags.study = '{args.report_only}' and tags.`study.summary` = 'true'"
    found = client.search_runs([experiment.experiment_id], query, max_results=1) if experiment else []
    if not found:
        print(f"error: no summary run for study {args.report_only!r} in {args.experiment!r}", file=sys.stderr)
        return 2
    summary = found[0]
    header = summary.data.tags["study.header"]
    n = write_report(client, summary.info.run_id, experiment.experiment_id, args.report_only, header, args.out)
    print(f"rebuilt {args.out} ({n} runs)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_only:
        return rebuild_report(args)

    study_id = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    configs = grid(args.activations, args.inits, [b == "on" for b in args.batch_norm], args.seeds)
    jobs = max(1, min(args.jobs, len(configs)))
    # The summary run opens first: it creates the store and experiment before parallel runs race to.
    logger = RunLogger(
        experiment_name=args.experiment,
        run_name=f"study-summary-{study_id}",
        tags={"study": study_id, "study.summary": "true"},
        log_model=False,
    )
    client: MlflowClient = logger.experiment
    logger.log_hyperparams({"grid.size": len(configs), "epochs": args.epochs, "jobs": jobs, "quick": args.quick})
    failures, wall = run_grid(args, study_id, configs, jobs)
    header = describe(args, argv, study_id, len(configs), len(failures), jobs, wall)
    client.set_tag(logger.run_id, "study.header", header)
    n = write_report(client, logger.run_id, logger.experiment_id, study_id, header, args.out)
    logger.finalize("success" if not failures else "failed")
    print(f"wrote {args.out} ({n} runs) in {wall / 60:.1f} min")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
