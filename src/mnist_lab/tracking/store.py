"""Open the MLflow store before a run starts, so a store that cannot work fails in seconds, clearly.

A local sqlite store is created once, under a file lock: two trainings started at the same moment
into a store that does not exist yet would otherwise both run MLflow's schema migration and one
would crash. The experiment is created under the same lock and its artifact folder is checked for
writing, so no run is ever left RUNNING because its first artifact could not be written.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from mnist_lab.errors import ConfigError


def check_server(uri: str, timeout_s: float = 5.0) -> None:
    """An HTTP tracking server must answer within seconds (MLflow itself retries for minutes)."""
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return  # it answered: a server is there
    except (urllib.error.URLError, OSError) as err:
        raise ConfigError(
            f"cannot reach the MLflow tracking server at {uri} ({getattr(err, 'reason', err)}); "
            "start it "
            "(`make ui`) or unset MLFLOW_TRACKING_URI to use the local store mlruns/"
        ) from None


def check_artifact_root(location: str | None) -> None:
    """A local artifact folder must be writable: try it with a probe file."""
    parsed = urlparse(location or "")
    if not location or parsed.scheme not in ("", "file"):
        return  # a remote artifact store: the server checks it
    probe = (
        Path(unquote(parsed.path) if parsed.scheme == "file" else location)
        / f".write-test-{uuid.uuid4().hex}"
    )
    try:
        probe.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise ConfigError(
            f"cannot write MLflow artifacts to {location}: {err.strerror} ({err.filename}); "
            "choose another "
            "--trainer.logger.init_args.artifact_location or experiment"
        ) from None


def check_sqlite(db: Path) -> None:
    """sqlite's own quick check: a corrupt store is one line before any run, not MLflow's 170."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            problem = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.Error as err:
        problem = str(err)
    if problem != "ok":
        raise ConfigError(
            f"the MLflow store {db} is corrupt ({problem}): restore it from a backup, or move it "
            "aside "
            "(`sqlite3 <file> .recover` may save its runs) and a new store is made there"
        )


def open_store(uri: str, experiment_name: str, artifact_location: str | None) -> str:
    """Create (once) or reach the store and the experiment; return the experiment id."""
    from mlflow import MlflowClient

    if uri.startswith(("http://", "https://")):
        check_server(uri)
    db = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    if db is not None and db.exists() and not os.access(db, os.W_OK):
        raise ConfigError(f"the MLflow store {db} is not writable")
    if db is not None and db.exists():
        check_sqlite(db)
    with contextlib.ExitStack() as stack:
        if (
            db is not None
        ):  # an exclusive lock beside the database while the store and experiment are made
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
                lock = stack.enter_context(open(db.parent / f".{db.name}.lock", "a"))  # noqa: SIM115
            except OSError as err:
                raise ConfigError(
                    f"cannot create the MLflow store at {db}: {err.strerror} ({err.filename})"
                ) from None
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            client = MlflowClient(uri)
            experiment = client.get_experiment_by_name(experiment_name)
        except Exception as err:  # noqa: BLE001 - sqlalchemy, MLflow and OS errors all mean "store unusable"
            raise ConfigError(
                f"cannot open the MLflow store {uri}: {type(err).__name__}: {err}"
            ) from None
        if experiment is not None and experiment.lifecycle_stage == "deleted":
            raise ConfigError(
                f"experiment {experiment_name!r} is deleted in {uri}; restore it or pick another"
            )
        if experiment is not None:
            check_artifact_root(experiment.artifact_location)
            return experiment.experiment_id
        check_artifact_root(artifact_location)
        return client.create_experiment(experiment_name, artifact_location=artifact_location)
