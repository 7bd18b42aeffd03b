"""``MLFlowLogger`` with a local sqlite store by default, untruncated params and run status handling.

MLflow 3 refuses the old folder store, so the default is ``sqlite:///mlruns/mlflow.db`` with
artifacts in ``mlruns/artifacts``: the top-level ``mlruns/`` folder is the whole local store.
``MLFLOW_TRACKING_URI`` overrides it (a remote ``mlflow server``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities.rank_zero import rank_zero_only

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns/artifacts"
MAX_PARAMS_PER_BATCH = 100  # MLflow's limit for one log_batch call


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The given URI, else ``$MLFLOW_TRACKING_URI``, else the local sqlite store (its folder created)."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return uri


class RunLogger(MLFlowLogger):
    """One MLflow run per CLI invocation; FINISHED, FAILED (with the error as a tag) or KILLED.

    Args:
        experiment_name: MLflow experiment (created on first use).
        tracking_uri: defaults to ``$MLFLOW_TRACKING_URI``, else the local sqlite store.
        artifact_location: for a new experiment on a local store; default ``mlruns/artifacts``.
        log_model: passed to ``MLFlowLogger``: ``True`` uploads the best checkpoint at the end.
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
    ) -> None:
        uri = resolve_tracking_uri(tracking_uri)
        if artifact_location is None and uri.startswith("sqlite:"):
            artifact_location = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri()
        super().__init__(
            experiment_name=experiment_name,
            run_name=run_name,
            tracking_uri=uri,
            tags=tags,
            log_model=log_model,
            artifact_location=artifact_location,
            synchronous=synchronous,
        )
        self.exit_status: str | None = None  # set by MLflowRunCallback when training is interrupted

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Any) -> None:
        """Log params in full: MLflow 3 takes values up to 6,000 characters, so nothing is cut here."""
        from mlflow.entities import Param

        flat = _flatten_dict(_convert_params(params))
        items = [Param(key=k, value=str(v)) for k, v in flat.items()]
        for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
            self.experiment.log_batch(run_id=self.run_id, params=items[start : start + MAX_PARAMS_PER_BATCH])

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        """Map Lightning's ``failed`` to KILLED when the cause was Ctrl-C."""
        if status == "failed" and self.exit_status is not None:
            status = self.exit_status
        super().finalize(status)
