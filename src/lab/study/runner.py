"""Run the study's jobs as processes, a few at a time, and say beforehand how many and how long."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lab.study.claims import Claim
from lab.study.grid import Job
from mnist_lab.parallel import job_env, threads_per_job

STARTUP_S = 12.0  # a `python -m mnist_lab fit` process before its first batch (imports, data, store), measured
QUICK_COST_S = 1.5  # a quick run's training and validation


def jobs_for(claims: list[Claim], seeds: list[int]) -> list[Job]:
    """Every claim's variants x seeds, in report order."""
    return [Job(c.name, v, s) for c in claims for v in c.variants for s in seeds]


def estimate_s(claims: list[Claim], seeds: list[int], parallel: int, quick: bool) -> float:
    """Wall seconds, from each run's start-up plus its claim's training estimate, over the parallel jobs."""
    per_run = {c.name: STARTUP_S + (QUICK_COST_S if quick else c.cost_s) for c in claims}
    total = sum(per_run[c.name] * len(c.variants) * len(seeds) for c in claims)
    return total / max(1, parallel)


def run_one(cmd: list[str], threads: int, log: Path, cwd: Path) -> tuple[int, float]:
    """One run as its own process, its output in ``log``; the exit code and the seconds it took.

    Its checkpoints (about 14 MB a run; the study reads MLflow, not them) go to a temporary folder
    removed when it ends, so 200 runs do not leave gigabytes under outputs/.
    """
    env = job_env(threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mnist-study-") as root, log.open("w") as out:
        full = [*cmd, f"--trainer.default_root_dir={root}"]
        code = subprocess.run(full, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd, check=False).returncode
    return code, time.perf_counter() - start


def run_all(jobs: list[Job], command: Callable[[Job], list[str]], parallel: int, log_dir: Path) -> list[str]:
    """Run every job, ``parallel`` at a time with the cores shared out; print each as it ends; return the failed."""
    threads = threads_per_job(parallel)
    log_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    with ThreadPoolExecutor(parallel) as pool:
        futures = {
            job: pool.submit(
                run_one, command(job), threads, log_dir / (job.label.replace("/", "_") + ".log"), Path.cwd()
            )
            for job in jobs
        }
        for n, (job, future) in enumerate(futures.items(), start=1):
            code, seconds = future.result()
            print(f"  [{n}/{len(jobs)}] {'ok  ' if code == 0 else 'FAIL'} {job.label:<50} {seconds:6.1f} s", flush=True)
            if code != 0:
                failures.append(job.label)
    return failures
