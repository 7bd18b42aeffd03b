"""``MLFlowLogger`` with a local sqlite store by default, untruncated params, resumable runs and status.

MLflow 3 refuses the old folder store, so the default is ``sqlite:///mlruns/mlflow.db`` with
artifacts in ``mlruns/artifacts``: the top-level ``mlruns/`` folder is the whole local store.
``MLFLOW_TRACKING_URI`` overrides it (a remote ``mlflow server``). The store is opened (created
once, under a lock) when the logger is made, so a store that cannot work fails before training.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import _add_prefix, _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only, rank_zero_warn

from mnist_lab.tracking.store import open_store

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns/artifacts"
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch call
UI_ADDRESS = "http://127.0.0.1:5000"  # where `make ui` serves


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The given URI, else ``$MLFLOW_TRACKING_URI``, else the local sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


class RunLogger(MLFlowLogger):
    """One MLflow run per CLI invocation, or the run a checkpoint came from when training resumes.

    Args:
        experiment_name: MLflow experiment (created on first use).
        run_name: the new run's name (the CLI names it after the network's choices).
        tracking_uri: defaults to ``$MLFLOW_TRACKING_URI``, else the local sqlite store.
        artifact_location: for a new experiment on a local store; default ``mlruns/artifacts``.
        log_model: passed to ``MLFlowLogger``: ``True`` uploads the best and last checkpoints at the end.
        run_id: continue this existing run (set by the CLI from a checkpoint when resuming).
        flush_every_s: metrics are kept in memory, with their own step and time, and written in one
            batch at most this often, after every checkpoint and at the end (0: on every call). A
            sqlite commit per logged step costs ~3% of an MLP epoch; one every few seconds is free.
            (MLflow's own ``synchronous=False`` moves each write to a thread instead: still one commit
            per call when calls are seconds apart, and the thread competes for the GIL.)
    """

    def __init__(
        self,
        experiment_name: str = "mnist",
        run_name: str | None = None,
        tracking_uri: str | None = None,
        tags: dict[str, Any] | None = None,
        artifact_location: str | None = None,
        log_model: bool = True,
        synchronous: bool | None = None,
        run_id: str | None = None,
        flush_every_s: float = 5.0,
    ) -> None:
        uri = resolve_tracking_uri(tracking_uri)
        if artifact_location is None and uri.startswith("sqlite:"):
            artifact_location = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
        experiment_id = None  # MLFlowLogger would create the store itself, unlocked and without checks
        if rank_zero_only.rank == 0 and run_id is None:
            experiment_id = open_store(uri, experiment_name, artifact_location)
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags=tags,
            log_model=log_model,
            artifact_location=artifact_location,
            synchronous=synchronous,
            run_id=run_id,
        )
        self.resumed = run_id is not None
        self._experiment_id = experiment_id
        self.exit_status: str | None = None  # set by MLflowRunCallback when a signal stops the run
        self._announced: str | None = None
        self.flush_every_s = flush_every_s
        self._pending: list[Any] = []  # mlflow Metric entities not yet written
        self._renamed: set[str] = set()  # metric names already warned about
        self._flushed_at = time.monotonic()

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The ``MlflowClient``; the first access creates (or reopens) the run and says where it is."""
        opening = not self._initialized
        client = MLFlowLogger.experiment.fget(self)  # type: ignore[attr-defined]
        if opening:
            if self.resumed:
                client.update_run(self._run_id, status="RUNNING")
            self._announce("resumed" if self.resumed else "started")
        return client

    def run_url(self) -> str:
        """The run's page in the MLflow UI (`make ui` for the local store)."""
        base = self._tracking_uri if self._tracking_uri.startswith("http") else UI_ADDRESS
        return f"{base.rstrip('/')}/#/experiments/{self._experiment_id}/runs/{self._run_id}"

    def _announce(self, what: str) -> None:
        if self._announced == what:
            return
        self._announced = what
        run = self._mlflow_client.get_run(self._run_id)
        experiment = self._mlflow_client.get_experiment(self._experiment_id)
        how = "" if self._tracking_uri.startswith("http") else " (`make ui`, then open it)"
        print(
            f"MLflow run {run.info.run_name!r} (id {self._run_id}) {what} in experiment {experiment.name!r}\n"
            f"  store: {self._tracking_uri}\n  view:  {self.run_url()}{how}",
            flush=True,
        )

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Any) -> None:
        """Log params in full: MLflow 3 takes values up to 6,000 characters, so nothing is cut here."""
        from mlflow.entities import Param

        flat = _flatten_dict(_convert_params(params))
        if self.resumed:  # a param cannot change within a run: log only the new ones
            known = self.experiment.get_run(self.run_id).data.params
            flat = {k: v for k, v in flat.items() if k not in known}
        items = [Param(key=k, value=str(v)) for k, v in flat.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.experiment.log_batch(run_id=self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Keep the values (named as ``MLFlowLogger`` names them) and write them in batches (``flush``)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in _add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR).items():
            if isinstance(value, str):
                continue  # MLflow metrics are numbers; MLFlowLogger drops strings too
            allowed = re.sub("[^a-zA-Z0-9_/. -]+", "", key)  # the characters MLflow allows, as MLFlowLogger does
            if allowed != key and key not in self._renamed:
                self._renamed.add(key)
                rank_zero_warn(f"MLflow metric names allow only letters, digits and '_/. -': {key!r} -> {allowed!r}")
            key = allowed
            self._pending.append(Metric(key=key, value=float(value), timestamp=now, step=step or 0))
        if time.monotonic() - self._flushed_at >= self.flush_every_s:
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        """Write the kept metrics, 1,000 per call (MLflow's limit); what a failed call did not write stays kept."""
        while self._pending:
            batch = self._pending[:1000]
            self.experiment.log_batch(run_id=self.run_id, metrics=batch, **self._log_batch_kwargs)
            del self._pending[: len(batch)]
        self._flushed_at = time.monotonic()

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """A checkpoint is a point to resume from: the run holds every metric logged before it."""
        self.flush()
        super().after_save_checkpoint(checkpoint_callback)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Map Lightning's ``failed`` to KILLED when a signal stopped the run; say how it ended."""
        if status == "failed" and self.exit_status is not None:
            status = self.exit_status
        try:
            if self._initialized:
                self.flush()
        except Exception as err:  # noqa: BLE001 - the run's status (and any error being raised) matter more
            rank_zero_warn(f"{len(self._pending)} metric values could not be written to MLflow: {err}")
        super().finalize(status)
        if self._initialized:
            self._announce({"success": "FINISHED", "failed": "FAILED"}.get(status, status).lower())
