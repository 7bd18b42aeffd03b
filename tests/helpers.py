"""What the tests share: a run store to copy, a callback that pauses a run for a signal, a server on
a port of its own choosing, and waiting on a file that a blocked process wrote."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch

from mnist_lab.names import CHECKPOINT_RUN_KEY
from mnist_lab.recovery import SIGNALS as STOP_SIGNALS


def store_uri(root: Path) -> str:
    """The store of a test's folder: absolute, as MLflow caches its stores by URI."""
    return f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"


READY = "TEST_READY_FILE"  # where PauseAt says it has paused


@dataclass(frozen=True)
class Snapshot:
    """A folder holding a store (``mlruns/``) and checkpoints (``outputs/``) of one or more runs."""

    root: Path
    run_id: str

    @property
    def uri(self) -> str:
        return store_uri(self.root)

    def clone(self, to: Path) -> Snapshot:
        """A copy under ``to``, its absolute paths (tags, artifact locations) into the copy."""
        shutil.copytree(self.root, to, dirs_exist_ok=True)
        with sqlite3.connect(to / "mlruns" / "mlflow.db") as db:
            for (table,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).fetchall():
                for column in db.execute(f"PRAGMA table_info('{table}')").fetchall():
                    if column[2].upper().startswith(("VARCHAR", "TEXT")):
                        db.execute(
                            f'UPDATE "{table}" SET "{column[1]}" = REPLACE("{column[1]}", ?, ?)',
                            (str(self.root), str(to)),
                        )
        for checkpoint in to.rglob("*.ckpt"):  # each names its run's store
            state = torch.load(checkpoint, weights_only=False)
            state[CHECKPOINT_RUN_KEY]["tracking_uri"] = store_uri(to)
            torch.save(state, checkpoint)
        return Snapshot(to, self.run_id)


def hold_until_signalled(announce: Callable[[], None]) -> None:
    """``announce`` that this process waits, then wait for a signal (the test sends it). No race:
    each signal is noted by its handler, and its wakeup byte, written from whichever thread the
    kernel delivers it to, ends the wait even if it came before. SIGUSR1 only lets the run go on;
    the stop signals noted are then delivered to the run's own handlers, in their order."""
    waited = (signal.SIGUSR1, *STOP_SIGNALS)
    got: list[int] = []
    read, write = os.pipe()
    os.set_blocking(write, False)
    handlers = {s: signal.signal(s, lambda signum, _: got.append(signum)) for s in waited}
    wakeup = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    try:
        announce()
        while not got:  # another signal's byte (SIGCHLD, say) only wakes it
            os.read(read, 1)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(wakeup)
        os.close(read)
        os.close(write)
    for signum in got:
        if signum != signal.SIGUSR1:
            signal.raise_signal(signum)


def ranked(ready: Path, rank: int) -> Path:
    """Rank ``rank``'s ready file: ``ready`` itself for rank 0, else with ``.<rank>`` after it (a
    signal sent when one rank waits could reach another before its wait)."""
    return ready if rank == 0 else ready.with_name(f"{ready.name}.{rank}")


def ready_file(rank: int = 0) -> Path:
    """Where this process says it waits: ``$TEST_READY_FILE``, :func:`ranked`."""
    return ranked(Path(os.environ[READY]), rank)


def pause_here(what: str, rank: int = 0) -> None:
    """Say ``what`` in the ready file, then wait for the test's signal."""
    hold_until_signalled(lambda: ready_file(rank).write_text(what))


def wait_for_ranks(ready: Path, ranks: int, proc: subprocess.Popen) -> None:
    """Until every one of ``ranks`` processes waits (:func:`ready_file`)."""
    for rank in range(ranks):
        wait_for(ranked(ready, rank), proc)


class PauseAt(L.Callback):
    """At training step ``step`` (or at the test's start, ``step=-1``) each process stops until a
    signal comes, having said so in its :func:`ready_file`."""

    def __init__(self, step: int = 1) -> None:
        self.step = step

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            pause_here(f"step {self.step}", trainer.global_rank)

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.step == -1:
            pause_here("test", trainer.global_rank)


def wait_for(path: Path, proc: subprocess.Popen | None = None, timeout: float = 120) -> str:
    """``path``'s text once it exists; fails if ``proc`` ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(
                f"ended (exit {proc.returncode}) before {path.name}:\n{out[-2000:]}{err[-3000:]}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path} within {timeout} s")
        time.sleep(0.05)
    return path.read_text()


def env_for(**extra: str) -> dict[str, str]:
    """This environment for a child process that imports the project's ``src`` and ``tests``."""
    root = Path(__file__).resolve().parents[1]
    path = os.pathsep.join([str(root / "tests"), str(root / "src")])
    return {**os.environ, "PYTHONPATH": path, **extra}


UVICORN = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@contextmanager
def started_server(
    command: list[str], log: Path, timeout: float = 120
) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start a server whose command asks for port 0; its process and URI once it answers; stopped
    (its whole process group) afterwards."""
    out = log.open("w")
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env_for(**env)
    )
    try:
        deadline, uri = time.monotonic() + timeout, None
        while uri is None or not answers(f"{uri}/health"):
            found = UVICORN.search(log.read_text())
            uri = found.group(1) if found else None
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc, uri
    finally:
        with_group(proc, signal.SIGTERM)
        out.close()


def answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
        return True
    except OSError:
        return False


def mlflow_server(backend: Path) -> list[str]:
    """``mlflow server`` over the sqlite file ``backend`` (artifacts beside it), on port 0."""
    mlflow = str(Path(sys.executable).parent / "mlflow")
    where = ["--backend-store-uri", f"sqlite:///{backend}", "--artifacts-destination"]
    return [
        mlflow,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--workers",
        "1",
        *where,
        str(backend.parent / "art"),
    ]


def with_group(proc: subprocess.Popen, signum: int, timeout: float = 60) -> int:
    """Signal ``proc``'s whole process group, wait for ``proc``, kill the group if it lingers."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signum)
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait(timeout=30)
        except ProcessLookupError:
            pass
    return proc.wait()


def job_runners(pgid: int) -> list[str]:
    """The MLflow job-runner processes (huey consumers) in process group ``pgid``."""
    table = subprocess.run(
        ["ps", "-eo", "pgid=,args="], capture_output=True, text=True, check=True
    ).stdout
    return [
        line
        for line in table.splitlines()
        if line.split()[0] == str(pgid) and "mlflow.server.jobs" in line
    ]
