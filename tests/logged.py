"""A run's logged MLflow model, read from the store given (no global tracking URI set)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from mlflow import MlflowClient
from mlflow.entities import LoggedModel

from mnist_lab.names import MODEL_NAME


def logged_model(tracking_uri: str, run_id: str) -> LoggedModel:
    """The run's one ``classifier``; load it from its ``artifact_location`` (a local folder)."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_run(run_id).info.experiment_id
    where = f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'"
    (model,) = client.search_logged_models(experiment_ids=[experiment], filter_string=where)
    return model


def folder(model: LoggedModel) -> Path:
    """Where a local store keeps the model's files (``MLmodel``, the weights)."""
    return Path(unquote(urlparse(model.artifact_location).path))
