"""When the MLflow store fails during a run: wait a bounded time, stop sending, keep what was not sent.

:class:`Outage` is the ``MlflowClient`` a :class:`~mnist_lab.tracking.RunLogger` hands out. The first
call that fails (server gone, disk full, store corrupt), after MLflow's own retries (bounded by
:func:`bound_http_wait`), marks the store down: that write and every later one go, one JSON line
each, to ``unsent_mlflow.jsonl`` in the run's checkpoint folder, reads answer ``None``, and
:class:`~mnist_lab.recovery.Recovery` stops training after the batch with ``last.ckpt`` (FAILED).
Resuming the run, or ``python -m mnist_lab.tracking.outage <file>``, sends the file once the store works.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from mnist_lab.checkpoints import CHECKPOINT_DIR_TAG
from mnist_lab.errors import ConfigError, RunFault, TemplateError

UNSENT = "unsent_mlflow.jsonl"
READS = ("get_", "search_", "list_", "download_")  # calls with nothing to keep
MISTAKES = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"}  # not a broken store
QUIET = ("urllib3.connectionpool", "mlflow.store.db.utils", "mlflow.utils.async_logging.async_logging_queue")


class StoreDown(RunFault):
    """The store failed during training; raised between two training steps, so ``last.ckpt`` is consistent."""


def bound_http_wait(timeout_s: float) -> None:
    """MLflow retries a failing HTTP request 7 times, over about 4 minutes; give up within ``timeout_s``:
    4 attempts, 0, 2 and 4 s apart, each waiting at most ``(timeout_s - 6) / 4``. ``MLFLOW_HTTP_*`` set win."""
    bounds = {"MAX_RETRIES": 3, "BACKOFF_FACTOR": 1, "BACKOFF_JITTER": 0, "TIMEOUT": max(1, int(timeout_s - 6) // 4)}
    for name, value in bounds.items():
        os.environ.setdefault(f"MLFLOW_HTTP_REQUEST_{name}", str(value))


class Outage:
    """The run's ``MlflowClient`` until a call fails; from then on nothing is sent and writes go to a file."""

    def __init__(self, client: Any, uri: str, run_id: str) -> None:
        self.client, self.uri, self.run_id = client, uri, run_id
        self.fault: str | None = None  # why the store is down
        self.lost = ""  # why the unsent writes could not be kept, if so
        self.file: Path | None = None  # where the unsent writes go, fixed by the first one
        self.folder = Path.cwd()  # the run's checkpoint folder, once its tag is set
        self._pending: tuple[Any, str, tuple, dict] | None = None  # the asynchronous log_batch in flight
        for name in QUIET:  # a failure is reported once, by the fault's message
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            if name == "set_tag" and args[1:2] == (CHECKPOINT_DIR_TAG,):
                self.folder = Path(args[2])
                if self.file is not None:  # kept before the folder was known: move it there
                    with contextlib.suppress(OSError):
                        self.folder.mkdir(parents=True, exist_ok=True)
                        self.file = Path(shutil.move(self.file, self.folder / UNSENT))
            self.settle()
            if self.fault is None:
                try:
                    result = method(*args, **kwargs)
                except Exception as err:  # noqa: BLE001 - HTTP, sqlalchemy and OS errors all mean "store down"
                    if getattr(err, "error_code", None) in MISTAKES:
                        raise
                    self._fail(err)
                else:
                    if name == "log_batch" and kwargs.get("synchronous") is False:
                        self._pending = (result, name, args, kwargs)
                    return result
            self._keep(name, args, kwargs)
            return None

        return call

    def settle(self) -> str | None:
        """Wait for the asynchronous write in flight (bounded by MLflow's retries); the fault, if any."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] is not None and self.fault is None:
            try:
                pending[0].wait()
            except Exception as err:  # noqa: BLE001 - as in call()
                self._fail(err)
                self._keep(*pending[1:])
        return self.fault

    def _fail(self, err: Exception) -> None:
        self.fault = first_line(err)

    def _keep(self, name: str, args: tuple, kwargs: dict) -> None:
        if name.startswith(READS):
            return
        if name.startswith("log_artifact"):  # a local file or folder, found from any working directory
            args = (args[0], str(Path(args[1]).resolve()), *args[2:])
        try:
            line = json.dumps({"call": name, "args": args, "kwargs": kwargs}, default=lambda o: dict(o))
        except (TypeError, ValueError):
            return  # a figure: not kept
        self.file = self.file or self.folder / UNSENT
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("a") as out:
                out.write(line + "\n")
        except OSError as err:
            self.lost = f" (some could not be written there: {err.strerror})"

    def explain(self) -> str:
        """The fault's one message: what failed, what is kept where, what to do."""
        return (
            f"the MLflow store {self.uri} failed during run {self.run_id}: {self.fault}. What it missed is kept "
            f"in {self.file or self.folder / UNSENT}{self.lost}; when the store works again, "
            f"`python -m mnist_lab.tracking.outage {self.file or self.folder / UNSENT}` sends it (resuming "
            f"the run, `make train RESUME={self.run_id}`, sends it too)"
        )


def first_line(err: BaseException) -> str:
    """An error's first line: MLflow's and sqlalchemy's messages run to dozens."""
    text = str(err).split("async logging operations: [", 1)[-1].removeprefix("MlflowException(")
    return re.split(r"\\n|\n", text.strip(" '\""))[0][:300] or type(err).__name__


def send(path: Path, client: Any) -> int:
    """Send a file of unsent writes in order and delete it; what could not be sent stays in it."""
    from mlflow.entities import Metric, Param, RunTag

    lines = path.read_text().splitlines()
    for done, line in enumerate(lines):
        record = json.loads(line)
        name, args, kwargs = record["call"], record["args"], record["kwargs"]
        kwargs.pop("synchronous", None)
        for key, entity in {"metrics": Metric, "params": Param, "tags": RunTag}.items():
            if key in kwargs:
                kwargs[key] = [entity(**fields) for fields in kwargs[key]]
        if name.startswith("log_artifact") and not Path(args[1]).exists():
            continue  # MLFlowLogger's temporary checkpoint metadata (or a file deleted since)
        try:
            getattr(client, name)(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - as in Outage
            path.write_text("".join(f"{rest}\n" for rest in lines[done:]))
            raise RunFault(
                f"could not send {path} ({len(lines) - done} writes left in it): {first_line(err)}"
            ) from None
    path.unlink()
    return len(lines)


def main(argv: list[str] | None = None) -> None:
    """``python -m mnist_lab.tracking.outage <unsent_mlflow.jsonl>``: send it to ``$MLFLOW_TRACKING_URI``."""
    from mlflow import MlflowClient

    from mnist_lab.tracking.logger import resolve_tracking_uri

    args = sys.argv[1:] if argv is None else argv
    uri = resolve_tracking_uri()
    try:
        if len(args) != 1 or not Path(args[0]).is_file():
            raise ConfigError(f"give one file of unsent writes: python -m mnist_lab.tracking.outage <folder>/{UNSENT}")
        if uri.startswith("http"):
            bound_http_wait(60)
        print(f"sent {send(Path(args[0]), MlflowClient(uri))} writes to {uri}")
    except TemplateError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2 if isinstance(err, ConfigError) else 1) from None


if __name__ == "__main__":
    main()
