"""Run the study's jobs in a few worker processes, each importing once and training many runs.

A worker calls :func:`mnist_lab.cli.main` for each of its runs, as a sweep's trials do; each run is
still its own nested MLflow run, and what one run could leave behind for the next (seed, torch
threads, signal handlers, a fluent MLflow run, output) is reset or checked.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import IO

import mlflow
import psutil
import torch

from lab.study.claims import Claim
from lab.study.grid import Job

from mnist_lab.cli import main
from mnist_lab.parallel import threads_per_job
from mnist_lab.recovery import ignore_stop_signals

# a worker's imports (torch, Lightning, MLflow) before its first run, measured
WORKER_START_S = 12.0
RUN_START_S = 4.0  # a warm run: CLI parsing, data, its MLflow run
QUICK_COST_S = 1.5  # a quick run's training and validation


def jobs_for(claims: list[Claim], seeds: list[int]) -> list[Job]:
    """Every claim's variants x seeds, in report order."""
    return [Job(c.name, v, s) for c in claims for v in c.variants for s in seeds]


def cost_s(claim: Claim, quick: bool) -> float:
    """One run's estimated seconds in a warm worker on one core."""
    return RUN_START_S + (QUICK_COST_S if quick else claim.cost_s)


def estimate_s(claims: list[Claim], seeds: list[int], parallel: int, quick: bool) -> float:
    """Wall seconds: the workers' start, then every run's estimate shared over the parallel
    workers."""
    total = sum(cost_s(c, quick) * len(c.variants) * len(seeds) for c in claims)
    return WORKER_START_S + total / max(1, parallel)


@contextmanager
def output_to(file: IO[str]) -> Iterator[None]:
    """Send this process's output to ``file``: ``sys.stdout``/``sys.stderr``, and descriptors 1 and
    2 for what holds them (logging handlers made at import, C code); restored afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(file.fileno(), 1)
    os.dup2(file.fileno(), 2)
    try:
        with redirect_stdout(file), redirect_stderr(file):
            yield
    finally:
        file.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def start_worker() -> None:
    """Between runs a worker ignores the stop signals: the parent stops the study (and no worker
    outlives it); a run in progress still gets them through the CLI's own handlers, ending
    KILLED."""
    ignore_stop_signals()


def run_one(
    args: list[str], threads: int, log: Path, stop: Path | None = None
) -> tuple[int, float]:
    """One run in this process (``mnist_lab.cli.main``), its output in ``log``; the exit code and
    seconds.

    When the file ``stop`` exists the study was stopped: the run does not start (exit code 130). Its
    checkpoints (about 14 MB a run; the study reads MLflow, not them) go to a temporary folder
    removed when it ends, so 200 runs do not leave gigabytes under outputs/.
    """
    # queued before Ctrl-C, beyond the reach of cancel_futures
    if stop is not None and stop.exists():
        return 130, 0.0
    torch.set_num_threads(threads)
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="mnist-study-") as root,
        log.open("w") as out,
        output_to(out),
    ):
        print(f"worker process {os.getpid()}", flush=True)
        try:
            main([*args, f"--trainer.default_root_dir={root}"])
            code = 0
        except SystemExit as end:
            code = end.code if isinstance(end.code, int) else 0 if end.code is None else 1
        except Exception:  # one broken run must not end the worker and the runs queued behind it
            traceback.print_exc()
            code = 1
        # the study's runs use the client; a fluent one must not linger
        if mlflow.active_run() is not None:
            mlflow.end_run("FAILED")
    return code, time.perf_counter() - start


def run_all(
    jobs: list[Job],
    command: Callable[[Job], list[str]],
    parallel: int,
    log_dir: Path,
    cost: Callable[[Job], float],
) -> list[str]:
    """Run every job in ``parallel`` worker processes with the cores shared out; print each as it
    ends with the time left (the planned cost of the runs left, scaled by how the finished ones
    compared with their plan); return the failed jobs' labels."""
    threads = threads_per_job(parallel)
    log_dir.mkdir(parents=True, exist_ok=True)
    stop = log_dir / "stopped"
    failures: list[str] = []
    planned, done_plan, start = sum(cost(j) for j in jobs), 0.0, time.perf_counter()
    # a fresh interpreter: no torch threads or locks forked
    spawn = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(parallel, mp_context=spawn, initializer=start_worker)
    try:
        futures = {
            pool.submit(
                run_one,
                command(job),
                threads,
                log_dir / (job.label.replace("/", "_") + ".log"),
                stop,
            ): job
            for job in jobs
        }
        for n, future in enumerate(as_completed(futures), start=1):
            job = futures[future]
            code, seconds = future.result()
            done_plan += cost(job)
            elapsed = time.perf_counter() - start
            left = elapsed / done_plan * (planned - done_plan)
            status = "ok  " if code == 0 else "FAIL"
            print(
                f"  [{n}/{len(jobs)}] {status} {job.label:<45} {seconds:5.1f} s | "
                f"{elapsed / 60:4.1f} min so far, about {left / 60:.1f} min left",
                flush=True,
            )
            if code != 0:
                failures.append(job.label)
    except BaseException:  # a stop: queued runs never start; running ones end KILLED, told so here
        stop.touch()
        # a signal to this process alone reaches them too
        for worker in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                worker.send_signal(signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    # the workers exit: whatever MLflow still queued is written before the report reads it
    pool.shutdown(wait=True)
    return failures
