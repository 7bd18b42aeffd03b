"""``MLFlowLogger`` with a local sqlite store by default, opened and checked before the run starts,
and runs that resume; its :class:`~mnist_lab.run.RunLife` decides how a run ends.

MLflow 3 refuses the old folder store, so the default is ``sqlite:///mlruns/mlflow.db`` with
artifacts in ``mlruns/artifacts``: the top-level ``mlruns/`` folder is the whole local store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.loggers.logger import rank_zero_experiment
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.names import UI_ADDRESS, artifact_root, resolve_tracking_uri
from mnist_lab.run import RunLife
from mnist_lab.tracking.store import open_store


def bound_http_wait(timeout_s: float) -> None:
    """MLflow retries a failing HTTP request 7 times over about 4 minutes; give up within
    ``timeout_s``: 4 attempts 0, 2 and 4 s apart, each waiting at most ``(timeout_s - 6) / 4``.
    ``MLFLOW_HTTP_REQUEST_*`` variables already set win."""
    timeout = max(1, int(timeout_s - 6) // 4)
    bounds = {"MAX_RETRIES": 3, "BACKOFF_FACTOR": 1, "BACKOFF_JITTER": 0, "TIMEOUT": timeout}
    for name, value in bounds.items():
        os.environ.setdefault(f"MLFLOW_HTTP_REQUEST_{name}", str(value))


class RunLogger(MLFlowLogger):
    """One MLflow run per CLI command, or the run a checkpoint came from when training resumes.

    Args:
        experiment_name: MLflow experiment (created on first use).
        run_name: the new run's name (the CLI names it after the network's arguments).
        tracking_uri: default ``$MLFLOW_TRACKING_URI``, else the local sqlite store.
        artifact_location: for a new experiment; a local store's default: ``artifacts/`` beside it.
        log_model: upload the best and last checkpoints (to ``<stem>/<stem>.ckpt``).
        run_id: continue this run (the CLI sets it from a checkpoint when resuming).
        synchronous: ``False`` is MLflow's asynchronous logging (``MLFlowLogger``'s option).
        store_timeout_s: how long a tracking server may fail to answer before a call fails.
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
        store_timeout_s: float = 60,
    ) -> None:
        self.uri = resolve_tracking_uri(tracking_uri)
        if self.uri.startswith(("http://", "https://")):
            bound_http_wait(store_timeout_s)
        if artifact_location is None and artifact_root(self.uri):
            artifact_location = Path(artifact_root(self.uri)).resolve().as_uri()
        if (
            rank_zero_only.rank == 0 and run_id is None
        ):  # MLFlowLogger would make it, unlocked, unchecked
            open_store(self.uri, experiment_name, artifact_location)
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=self.uri,
            tags=tags,
            log_model=False,  # uploaded here: MLFlowLogger's own upload is private
            artifact_location=artifact_location,
            run_id=run_id,
            synchronous=synchronous,
        )
        self.experiment_name = experiment_name
        self.life = RunLife(self._end, resumed=run_id is not None)
        self.upload_checkpoints = log_model
        self._client: Any = None  # the run's client, once the run is open
        self._wrappers: list[Callable[[Any], Any]] = []
        self._savers: list[Any] = []  # the checkpoint callbacks that saved something
        self._uploaded: dict[Path, float] = {}

    @property
    def tracking_uri(self) -> str:
        return self.uri

    @property
    def resumed(self) -> bool:
        return self.life.resumed

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The run's ``MlflowClient`` (as parts wrapped it); the first use creates or reopens the
        run and says where it is."""
        if self._client is None:
            self._client = super().experiment
            run = self._client.get_run(self.run_id)
            if self.resumed:
                self._reopen(run)
            for wrap in self._wrappers:
                self._client = wrap(self._client)
            self._announce(run.info.run_name, "resumed" if self.resumed else "started")
        return self._client

    def wrap_client(self, wrapper: Callable[[Any], Any]) -> None:
        """Route the run's MLflow calls through ``wrapper(client)`` (a part's: an outage buffer)."""
        self._wrappers.append(wrapper)
        if self._client is not None:
            self._client = wrapper(self._client)

    def _reopen(self, run: Any) -> None:
        self._client.update_run(self.run_id, status="RUNNING")
        if "error" in run.data.tags:  # the stop it names is over: the run goes on
            self._client.delete_tag(self.run_id, "error")
        own = self._client.get_experiment(run.info.experiment_id).name
        if own != self.experiment_name:
            print(
                f"note: run {self.run_id} goes on in its own experiment {own!r}, "
                f"not {self.experiment_name!r}"
            )

    def run_url(self) -> str:
        """The run's page in the MLflow UI (`make ui` serves the local store)."""
        base = self.uri if self.uri.startswith("http") else UI_ADDRESS
        return f"{base.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def _announce(self, name: str, what: str) -> None:
        how = "" if self.uri.startswith("http") else " (`make ui`, then open it)"
        print(
            f"MLflow run {name!r} (id {self.run_id}) {what}\n  store: {self.uri}\n"
            f"  view:  {self.run_url()}{how}",
            flush=True,
        )

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Any) -> None:
        """A param cannot change within a run: a resumed run keeps the params it started with."""
        if not self.resumed:
            super().log_hyperparams(params)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if checkpoint_callback not in self._savers:
            self._savers.append(checkpoint_callback)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Lightning's end of a trainer call: upload what changed; the run ends as its life says."""
        if self._client is not None:
            self._upload_checkpoints()
            self.life.finalized(status)

    def _end(self, status: str, error: BaseException | None) -> None:
        if self._client is None or rank_zero_only.rank != 0:
            return
        self._upload_checkpoints()
        if error is not None:
            self._client.set_tag(self.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
        self._client.set_terminated(self.run_id, status)
        print(f"MLflow run {self.run_id} {status}: {self.run_url()}", flush=True)

    def _upload_checkpoints(self) -> None:
        """The best and last checkpoints, each once per change, to ``<stem>/<stem>.ckpt``."""
        paths = {Path(s.best_model_path) for s in self._savers if s.best_model_path}
        for path in sorted(paths) if self.upload_checkpoints else []:
            if path.is_file() and self._uploaded.get(path) != path.stat().st_mtime:
                self._client.log_artifact(self.run_id, str(path), path.stem)
                self._uploaded[path] = path.stat().st_mtime


def run_logger(trainer: L.Trainer) -> RunLogger | None:
    """The trainer's ``RunLogger``, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, RunLogger)), None)
