"""Open the MLflow store before a run starts, so a store that cannot work fails in seconds, clearly.

A local sqlite store is created once, under a file lock: two trainings started at the same moment
into a store that does not exist yet would otherwise both run MLflow's schema migration and one
would crash. The experiment is created under the same lock, and its artifact folder is checked
for writing, so no run is ever left RUNNING because its first artifact could not be written.
"""

from __future__ import annotations

import fcntl
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from mnist_lab.errors import ConfigError

SERVER_TIMEOUT_S = 5.0


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URI."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextmanager
def store_lock(db: Path) -> Iterator[None]:
    """An exclusive lock beside the database file, held while the store and experiment are created."""
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        handle = open(db.parent / f".{db.name}.lock", "a")  # noqa: SIM115 - held for the whole block
    except OSError as err:
        raise ConfigError(f"cannot create the MLflow store at {db}: {err.strerror} ({err.filename})") from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_server(uri: str) -> None:
    """An HTTP tracking server must answer within seconds (MLflow itself retries for minutes)."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT_S):
            return
    except urllib.error.HTTPError:
        return  # it answered: a server is there
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise ConfigError(
            f"cannot reach the MLflow tracking server at {uri} ({reason}); start it (`make ui`) "
            "or unset MLFLOW_TRACKING_URI to use the local store mlruns/"
        ) from None


def check_artifact_root(location: str | None) -> None:
    """A local artifact folder must be writable: try it with a probe file."""
    if not location:
        return
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return  # a remote artifact store: the server checks it
    folder = Path(unquote(parsed.path) if parsed.scheme == "file" else location)
    probe = folder / f".write-test-{uuid.uuid4().hex}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"cannot write MLflow artifacts to {location}: {err.strerror} ({err.filename}); choose another "
            "--trainer.logger.init_args.artifact_location or experiment"
        ) from None


def open_store(uri: str, experiment_name: str, artifact_location: str | None) -> str:
    """Create (once) or reach the store and the experiment; return the experiment id."""
    from mlflow import MlflowClient

    if uri.startswith(("http://", "https://")):
        check_server(uri)
    db = sqlite_path(uri)

    def get_or_create() -> str:
        try:
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None or experiment.lifecycle_stage == "deleted":
                if experiment is not None:
                    raise ConfigError(f"experiment {experiment_name!r} is deleted in {uri}; restore it or pick another")
                check_artifact_root(artifact_location)
                return client.create_experiment(experiment_name, artifact_location=artifact_location)
        except ConfigError:
            raise
        except Exception as err:  # noqa: BLE001 - sqlalchemy, MLflow and OS errors all mean "store unusable"
            raise ConfigError(f"cannot open the MLflow store {uri}: {type(err).__name__}: {err}") from None
        check_artifact_root(experiment.artifact_location)
        return experiment.experiment_id

    if db is None:
        return get_or_create()
    if db.exists() and not os.access(db, os.W_OK):
        raise ConfigError(f"the MLflow store {db} is not writable")
    with store_lock(db):
        return get_or_create()
