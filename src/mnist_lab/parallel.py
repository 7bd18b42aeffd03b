"""Several training processes on one machine: each gets an equal share of the cores."""

from __future__ import annotations

import os


def threads_per_job(jobs: int) -> int:
    """Torch threads for each of ``jobs`` processes (more threads than cores only wait)."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def job_env(threads: int) -> dict[str, str]:
    """This process's environment with ``threads`` OpenMP/MKL threads, for a child process."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
