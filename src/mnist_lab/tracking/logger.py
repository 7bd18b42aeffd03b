"""``MLFlowLogger`` with a local sqlite store by default, checked before training, resumable runs.

MLflow 3 refuses the old folder store, so the default is ``sqlite:///mlruns/mlflow.db`` with
artifacts in ``mlruns/artifacts``: the top-level ``mlruns/`` folder is the whole local store.
``MLFLOW_TRACKING_URI`` overrides it (a remote ``mlflow server``). The store is opened (created
once, under a lock) when the logger is made, so a store that cannot work fails before training.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.checkpoints import CHECKPOINT_DIR_TAG
from mnist_lab.stale import tag_process
from mnist_lab.tracking.outage import UNSENT, Outage, StoreDown, bound_http_wait, send
from mnist_lab.tracking.store import open_store

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns/artifacts"
UI_ADDRESS = "http://127.0.0.1:5000"  # where `make ui` serves


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The given URI, else ``$MLFLOW_TRACKING_URI``, else the local sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def run_status(lightning_status: str, stopped_by: BaseException | None) -> str:
    """The MLflow status a run ends with; the one place that decides it.

    A signal or Ctrl-C ends it KILLED; an exception that says how its run ends (``run_status``, e.g.
    a pruned sweep trial: FINISHED) ends it so; any other exception FAILED.
    """
    if stopped_by is None:
        return "FAILED" if lightning_status == "failed" else "FINISHED"
    if isinstance(stopped_by, (KeyboardInterrupt, SIGTERMException)):
        return "KILLED"
    return getattr(stopped_by, "run_status", "FAILED")


class RunLogger(MLFlowLogger):
    """One MLflow run per CLI invocation, or the run a checkpoint came from when training resumes.

    Args:
        experiment_name: MLflow experiment (created on first use).
        run_name: the new run's name (the CLI names it after the network's arguments).
        tracking_uri: defaults to ``$MLFLOW_TRACKING_URI``, else the local sqlite store.
        artifact_location: for a new experiment on a local store; default ``mlruns/artifacts``.
        log_model: upload the best and last checkpoints (to ``<stem>/<stem>.ckpt``) at the end of fit.
        run_id: continue this existing run (the CLI sets it from a checkpoint when resuming).
        synchronous: ``False`` is MLflow's asynchronous logging (``MLFlowLogger``'s own option).
        log_system_metrics: MLflow's ``system/*`` metrics (CPU, memory, disk, network; GPU with ``nvidia-ml-py``) in
            this run, every ``$MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL`` (10) seconds and once at the end, from rank 0.
        store_timeout_s: how long a tracking server may fail to answer before the run stops (see ``outage``).
    """

    def __init__(
        self,
        experiment_name: str = "mnist",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        artifact_location: str | None = None,
        log_model: bool = True,
        run_id: str | None = None,
        synchronous: bool | None = None,
        log_system_metrics: bool = False,
        store_timeout_s: float = 60,
    ) -> None:
        uri = resolve_tracking_uri(tracking_uri)
        if uri.startswith(("http://", "https://")):
            bound_http_wait(store_timeout_s)
        if artifact_location is None and uri.startswith("sqlite:"):
            artifact_location = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
        experiment_id = None  # MLFlowLogger would create the store itself, unlocked and unchecked
        if rank_zero_only.rank == 0 and run_id is None:
            experiment_id = open_store(uri, experiment_name, artifact_location)
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags=tags,
            log_model=False,  # uploaded here, by the public client: MLFlowLogger's upload is private
            artifact_location=artifact_location,
            run_id=run_id,
            synchronous=synchronous,
        )
        self._experiment_id = experiment_id
        self.resumed = run_id is not None
        self.stopped_by: BaseException | None = None  # set by RunArtifacts.on_exception
        self.test_follows = False  # set by the CLI: fit's end leaves the run open for the test after it
        self._log_system_metrics, self._monitor = log_system_metrics, None
        self.outage: Outage | None = None  # the run's client, once the run is open
        self._told = False  # the outage's message was printed
        self.upload_checkpoints, self._saver, self._uploaded = log_model, None, {}

    @property
    def tracking_uri(self) -> str:
        return self._tracking_uri

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``MlflowClient`` (as an :class:`Outage`); the first access creates (or reopens) the run,
        sends what an earlier outage kept, and says where the run is."""
        if self.outage is None:
            client = super().experiment
            if self.resumed:
                folder = client.get_run(self._run_id).data.tags.get(CHECKPOINT_DIR_TAG)
                if folder and (Path(folder) / UNSENT).is_file():
                    print(f"sent {send(Path(folder) / UNSENT, client)} writes kept by an outage", flush=True)
                client.update_run(self._run_id, status="RUNNING")
            tag_process(client, self._run_id)  # so that a later command can tell if its process is gone
            self.outage = Outage(client, self._tracking_uri, self._run_id)
            self._announce("resumed" if self.resumed else "started")
            if self._log_system_metrics:  # MLflow's monitor for a run it did not start itself
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # not 4 INFO lines a run
                self._monitor = SystemMetricsMonitor(
                    self._run_id, resume_logging=self.resumed, tracking_uri=self.tracking_uri
                )
                self._monitor.start()
        return self.outage

    @property
    def fault(self) -> StoreDown | None:
        """The store's failure, once a call has failed (a failed asynchronous write shows at the next one)."""
        if self.outage is None or self.outage.fault is None:
            return None
        return StoreDown(self.outage.explain())

    def run_url(self) -> str:
        """The run's page in the MLflow UI (`make ui` for the local store)."""
        base = self._tracking_uri if self._tracking_uri.startswith("http") else UI_ADDRESS
        return f"{base.rstrip('/')}/#/experiments/{self._experiment_id}/runs/{self._run_id}"

    def _announce(self, what: str) -> None:
        run = self._mlflow_client.get_run(self._run_id)
        self._experiment_id = run.info.experiment_id
        how = "" if self._tracking_uri.startswith("http") else " (`make ui`, then open it)"
        print(
            f"MLflow run {run.info.run_name!r} (id {self._run_id}) {what}\n"
            f"  store: {self._tracking_uri}\n  view:  {self.run_url()}{how}",
            flush=True,
        )

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Any) -> None:
        """A param cannot change within a run: a resumed run keeps the params it started with."""
        if not self.resumed:
            super().log_hyperparams(params)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """End the run with :func:`run_status`'s status and say how it ended, once: after the test that
        follows fit, if one does (Lightning finalizes at the end of each of them)."""
        if not self._initialized:
            return
        self._upload_checkpoints()  # now, as the test after fit restores the callback's state from `best`
        if status == "success" and self.test_follows:  # fit's end: the test's end ends the run
            self.test_follows = False
            return
        ended = run_status(status, self.stopped_by)
        if self._monitor is not None:
            self._monitor.finish()  # stops MLflow's sampler, which writes nothing for a run shorter than its interval
            with contextlib.suppress(Exception):  # so every run has one sample, whatever the timing
                if self.fault is None:  # not another wait on a store that is down
                    self._monitor.collect_metrics()
                    self._monitor.publish_metrics(self._monitor.aggregate_metrics())
                    self._monitor.mlflow_logger.flush()
        super().finalize(ended)
        self.outage.settle()  # the last asynchronous write
        fault = self.fault
        if fault is None:
            print(f"MLflow run {self._run_id} {ended}: {self.run_url()}", flush=True)
            return
        self.experiment.set_terminated(self._run_id, ended)  # kept: the file ends the run so when sent
        if not self._tracking_uri.startswith("http"):  # and FAILED wherever it can still be written
            with contextlib.suppress(Exception):
                self.outage.client.set_terminated(self._run_id, "FAILED")
        if not isinstance(self.stopped_by, StoreDown) and not self._told:  # else the CLI's error line says it
            print(f"error: {fault}", file=sys.stderr, flush=True)
        self._told = True

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        self._saver = checkpoint_callback  # uploaded at the end (MLFlowLogger's `log_model=True`)

    def _upload_checkpoints(self) -> None:
        """The best and last checkpoints, each once per change, to ``<stem>/<stem>.ckpt`` (where ``checkpoints``
        finds them)."""
        if not self.upload_checkpoints or self._saver is None:
            return
        for path in {Path(p) for p in (self._saver.best_model_path, self._saver.last_model_path) if p}:
            if path.is_file() and self._uploaded.get(path) != path.stat().st_mtime:
                self.experiment.log_artifact(self._run_id, str(path), path.stem)
                self._uploaded[path] = path.stat().st_mtime


def run_logger(trainer: L.Trainer) -> RunLogger | None:
    """The trainer's ``RunLogger``, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, RunLogger)), None)
