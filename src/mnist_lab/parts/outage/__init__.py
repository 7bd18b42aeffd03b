"""When the MLflow store fails during a run: stop sending, keep every write in a file, stop training
with ``last.ckpt``; send the file when the store works again (resuming the run does).

:class:`StoreOutage` (a callback) routes the run's client through :class:`BufferedClient`. The first
call that fails (a dead server after the logger's bounded wait, a full disk, a corrupt store) marks
the store down: that write and every later one go, one JSON line each, to ``unsent_mlflow.jsonl`` in
the run's checkpoint folder, reads answer ``None``, and training stops after the batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.errors import RunFault
from mnist_lab.names import CHECKPOINT_DIR_TAG
from mnist_lab.recovery import REQUEST
from mnist_lab.tracking.logger import run_logger

UNSENT = "unsent_mlflow.jsonl"
READS = ("get_", "search_", "list_", "download_")  # calls with nothing to keep
ARTIFACTS = ("log_artifact", "log_figure", "log_text", "log_image")
MISTAKES = {"INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST", "RESOURCE_ALREADY_EXISTS"}
QUIET = (
    "urllib3.connectionpool",
    "mlflow.store.db.utils",
    "mlflow.utils.async_logging.async_logging_queue",
)


class StoreDown(RunFault):
    """The store failed during the run; what it missed is kept (the message says where)."""


OS_REASON = re.compile(r"\[Errno -?\d+\] [^'\"\\()\[\]]+(?:'[^']*')?")  # the OS's own words
HTTP_WRAPPER = re.compile(r"^API request to \S+ failed with exception ")
CAUSE_WIDTH = 160


def first_line(err: BaseException) -> str:
    """An error's cause, short: MLflow's and sqlalchemy's messages run to dozens of lines, and an
    HTTP error wraps the OS's reason (``[Errno 111] Connection refused``) in 300 characters."""
    if found := OS_REASON.search(str(err).replace("\\'", "'")):
        return found.group(0).strip()
    text = str(err).split("async logging operations: [", 1)[-1].removeprefix("MlflowException(")
    text = re.split(r"\\n|\n", text.strip(" '\""))[0]
    text = HTTP_WRAPPER.sub("", text).removesuffix("')]").removesuffix('")]')
    if found := re.match(r"\('([^']+)', ", text):  # urllib3's (reason, exception) pair
        text = found.group(1)
    return text[:CAUSE_WIDTH] or type(err).__name__


class BufferedClient:
    """A run's ``MlflowClient`` until a call fails; from then on writes go to a file, not the
    store."""

    def __init__(self, client: Any, uri: str, run_id: str, folder: Callable[[], Path]) -> None:
        self.client, self.uri, self.run_id, self.folder = client, uri, run_id, folder
        self.fault: str | None = None  # what failed, and why
        self.file: Path | None = None  # where the unsent writes go, fixed by the first one
        self.lost = ""  # why some could not be kept there
        self.pending: Any = None  # the asynchronous log_batch in flight
        for name in QUIET:  # a failure is reported once, by the fault's message
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        return self._guarded(name, method) if callable(method) else method

    def _guarded(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.settle()
            if self.fault is None:
                try:
                    result = method(*args, **kwargs)
                except Exception as err:  # noqa: BLE001 - HTTP, sqlalchemy and OS errors: "store down"
                    if getattr(err, "error_code", None) in MISTAKES:
                        raise
                    self._fail(name, err)
                else:
                    if name == "log_batch" and kwargs.get("synchronous") is False:
                        self.pending = (result, name, args, kwargs)
                    return result
            self.keep(name, args, kwargs)
            if name == "set_terminated":  # the run's end could not be written: say so, once
                self._end_where_possible(*args, **kwargs)
                raise StoreDown(self.explain())
            return None

        return call

    def settle(self) -> None:
        """Wait for the asynchronous write in flight (bounded by MLflow's retries)."""
        pending, self.pending = self.pending, None
        if pending is not None and pending[0] is not None and self.fault is None:
            try:
                pending[0].wait()
            except Exception as err:  # noqa: BLE001 - as in call()
                self._fail(pending[1], err)
                self.keep(*pending[1:])

    def _fail(self, name: str, err: Exception) -> None:
        where = (
            "the artifact store" if name.startswith(ARTIFACTS) else f"the MLflow store {self.uri}"
        )
        self.fault = f"{where} failed during run {self.run_id} ({name}): {first_line(err)}"

    def _end_where_possible(self, run_id: str, status: str = "FAILED", **_: Any) -> None:
        if not self.uri.startswith("http"):  # a local store that has room still takes it
            with contextlib.suppress(Exception):
                self.client.set_terminated(run_id, "FAILED")

    def keep(self, name: str, args: tuple, kwargs: dict) -> None:
        if name.startswith(READS):
            return
        if name.startswith("log_artifact"):  # a local file or folder, found from any folder
            args = (args[0], str(Path(args[1]).resolve()), *args[2:])
        try:
            line = json.dumps(
                {"call": name, "args": args, "kwargs": kwargs}, default=lambda o: dict(o)
            )
        except (TypeError, ValueError):
            return  # a figure: not kept
        self.file = self.file or self.folder() / UNSENT
        try:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with self.file.open("a") as out:
                out.write(line + "\n")
        except OSError as err:
            self.lost = f" (some could not be written there: {err.strerror})"

    def settle_in(self) -> None:
        """Move what was kept before the checkpoint folder existed (setting up) into it."""
        folder = self.folder()
        if self.file is not None and self.file.parent != folder and self.file.is_file():
            with contextlib.suppress(OSError):
                folder.mkdir(parents=True, exist_ok=True)
                self.file = Path(shutil.move(self.file, folder / UNSENT))

    def explain(self) -> str:
        """The fault's one message: what failed, what is kept where, what to do."""
        file = self.file or self.folder() / UNSENT
        return (
            f"{self.fault}; what it missed is kept{self.lost}: once the store works, resume the "
            f"run or send it with `python -m mnist_lab.parts.outage {file}`"
        )


class StoreOutage(L.Callback):
    """Keeps what a failing store misses and stops training cleanly (``trainer.callbacks``)."""

    def __init__(self) -> None:
        self.client: BufferedClient | None = None

    @rank_zero_only
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None or self.client is not None:
            return

        def folder() -> Path:
            return Path(
                getattr(trainer.checkpoint_callback, "dirpath", None) or trainer.default_root_dir
            )

        def wrap(client: Any) -> BufferedClient:
            self.client = BufferedClient(client, logger.tracking_uri, logger.run_id, folder)
            return self.client

        if logger.resumed:  # what an outage kept goes first; the run goes on, so not its old end
            tags = logger.experiment.get_run(logger.run_id).data.tags
            kept = Path(tags.get(CHECKPOINT_DIR_TAG, folder())) / UNSENT
            if kept.is_file():
                sent = send(
                    kept, logger.experiment, logger.tracking_uri, ("set_terminated", "error")
                )
                print(f"sent {sent} writes kept by an outage", flush=True)
        logger.wrap_client(wrap)

    def _check(self, trainer: L.Trainer) -> None:
        if self.client is not None and (self.client.settle() or self.client.fault):
            self.client.settle_in()
            REQUEST.ask(StoreDown(self.client.explain()))

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._check(trainer)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """No model to log into a store that is down: keep the test's metrics (Lightning would
        log them after this hook) and where the model comes from instead."""
        if self.client is not None and self.client.fault:
            from mlflow.entities import Metric

            self.client.settle_in()
            now, step = int(time.time() * 1000), trainer.global_step
            metrics = [
                Metric(key, float(value), now, step)
                for key, value in trainer.callback_metrics.items()
            ]
            self.client.keep("log_batch", (self.client.run_id,), {"metrics": metrics})
            best = getattr(trainer.checkpoint_callback, "best_model_path", "")
            self.client.keep("log_model", (self.client.run_id, str(Path(best).resolve())), {})
            raise StoreDown(self.client.explain())


def send(path: Path, client: Any, uri: str, skip: tuple[str, ...] = ()) -> int:
    """Send a file of unsent writes in order and delete it; what could not be sent stays in it.
    ``skip``: calls (and tags) not sent, e.g. a resumed run's old end."""
    from mlflow.entities import Metric, Param, RunTag

    lines = path.read_text().splitlines()
    for done, line in enumerate(lines):
        record = json.loads(line)
        name, args, kwargs = record["call"], record["args"], record["kwargs"]
        kwargs.pop("synchronous", None)
        for key, entity in {"metrics": Metric, "params": Param, "tags": RunTag}.items():
            if key in kwargs:
                kwargs[key] = [entity(**fields) for fields in kwargs[key]]
        if name in skip or (name == "set_tag" and args[1] in skip):
            continue
        if name.startswith("log_artifact") and not Path(args[1]).exists():
            continue  # a temporary file, or one deleted since
        try:
            if name == "log_model":
                log_model_of(uri, *args)
            else:
                getattr(client, name)(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - as in BufferedClient
            path.write_text("".join(f"{rest}\n" for rest in lines[done:]))
            raise RunFault(
                f"could not send {path} ({len(lines) - done} writes left): {first_line(err)}"
            ) from None
    path.unlink()
    return len(lines)


def log_model_of(uri: str, run_id: str, checkpoint: str) -> None:
    """The model a run could not log when its store was down, from its best checkpoint."""
    from mnist_lab.data.datasets import get_dataset
    from mnist_lab.resume import load_classifier
    from mnist_lab.tracking.model import log_pytorch_model

    model = load_classifier(checkpoint)
    names = list(get_dataset(model.dataset).class_names)
    log_pytorch_model(
        uri, run_id, model.net, tuple(model.hparams.input_shape), model.dataset, names
    )
