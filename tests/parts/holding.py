"""What the parts' tests share (no part imported here: each test file uses its own part only): a
callback that holds a training at a known step until the test signals it, in any number of
processes, and the environment a child process needs to find this folder's modules."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import mlflow

from helpers import env_for, hold_until_signalled

HOLD_DIR = "TEST_HOLD_DIR"  # where each held process writes its PID, as slot-0, slot-1, ...
HERE = Path(__file__).resolve().parent


class Hold(L.Callback):
    """At training step ``step``, the first ``slots`` processes to get there (over all the runs
    that share ``$TEST_HOLD_DIR``) each write their PID to a slot file and wait in
    a blocked-signal wait; SIGUSR1 lets one go on as if nothing came, any other signal acts as it
    would. The runs after those go by: a continued sweep or a resumed run is not held again.
    What the run logged before is in its store once it is held (MLflow's queue is flushed)."""

    def __init__(self, step: int = 1, slots: int = 1) -> None:
        self.step, self.slots = step, slots

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step != self.step or HOLD_DIR not in os.environ:
            return
        for slot in range(self.slots):
            path = Path(os.environ[HOLD_DIR]) / f"slot-{slot}"
            try:  # O_EXCL: of two processes at once, one takes the slot
                os.close(os.open(path.with_suffix(".claim"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                continue
            mlflow.flush_async_logging()
            hold_until_signalled(lambda slot_file=path: announce(slot_file))
            return


def announce(slot_file: Path) -> None:
    """This process's PID in ``slot_file``, whole when it appears."""
    slot_file.with_suffix(".tmp").write_text(str(os.getpid()))
    slot_file.with_suffix(".tmp").rename(slot_file)


def held(folder: Path, slots: int = 1, procs: tuple = (), timeout: float = 180) -> list[int]:
    """The PIDs of the ``slots`` processes held in ``folder``, once all are held; fails if one of
    ``procs`` ends first."""
    deadline = time.monotonic() + timeout
    paths = [folder / f"slot-{slot}" for slot in range(slots)]
    while not all(p.exists() for p in paths):
        if ended := [p for p in procs if p.poll() is not None]:
            out = ended[0].stdout.read() if ended[0].stdout else ""
            raise AssertionError(f"ended (exit {ended[0].returncode}) before it was held:\n{out}")
        assert time.monotonic() < deadline, f"not held within {timeout} s"
        time.sleep(0.05)
    return [int(p.read_text()) for p in paths]


def child_env(**extra: str) -> dict[str, str]:
    """``helpers.env_for``, with this folder importable too (``holding.Hold`` as a class path)."""
    env = env_for(**extra)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env["PYTHONPATH"]])
    return env
