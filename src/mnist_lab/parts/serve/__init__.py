"""Serving a run's logged model over REST (``make serve``) and the model registry
(``make register``).

``make serve RUN=<run id> | MODEL=models:/<name>@<alias>`` serves a checked local copy of the model:
its pickled network is a zip archive whose CRC-32s are verified before ``mlflow models serve``
starts, so a damaged download or artifact is one error line, not a server that answers nonsense.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mnist_lab.checkpointing import check_whole
from mnist_lab.errors import ConfigError, command
from mnist_lab.names import MODEL_NAME, resolve_tracking_uri
from mnist_lab.resume import REGISTERED, RUN_ID, registered_run


def model_uri(run_id: str, tracking_uri: str, required: bool = True) -> str | None:
    """``models:/<model id>`` of the run's logged ``classifier``; None if it has none and not
    ``required``."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"no MLflow run {run_id} in {tracking_uri}; `make ui` lists the runs"
        ) from None
    found = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'",
    )
    if not found and required:
        raise ConfigError(
            f"run {run_id} logged no model {MODEL_NAME!r} "
            "(it logs one after its test: run_test=true)"
        )
    return found[0].model_uri if found else None


def checked_copy(uri: str, tracking_uri: str, root: Path) -> Path:
    """The model's files under ``root``, each archive checked whole."""
    import mlflow

    # not a bar redrawn over and over
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri)
    name = uri.removeprefix("models:/").replace("/", "_").replace("@", "_")
    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(root / name)))
    for archive in local.rglob("*.pth"):
        check_whole(archive)
    return local


@command
def main(argv: list[str] | None = None) -> None:
    """``python -m mnist_lab.parts.serve <run id | models:/...>``: the checked copy to serve, or an
    error."""
    args = sys.argv[1:] if argv is None else argv
    uri = resolve_tracking_uri()
    if len(args) == 1 and REGISTERED.match(args[0]):
        registered_run(args[0], uri)  # it exists, or one line says how to make it
        model = args[0]
    elif len(args) == 1 and RUN_ID.match(args[0]):
        model = str(model_uri(RUN_ID.match(args[0]).group(1), uri))
    else:
        given = (
            f"{args[0]!r} is neither an MLflow run id (32 hex digits) nor a models:/ URI; "
            if args
            else ""
        )
        raise ConfigError(
            f"{given}give one: make serve RUN=<run id> | MODEL=models:/<name>@<alias>"
        )
    print(checked_copy(model, uri, Path("outputs/serve")))
