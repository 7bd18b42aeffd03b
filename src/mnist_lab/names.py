"""The names that tracking writes and resuming reads, and where runs live by default.

The bottom of the layers: it imports nothing, so every module (and the Makefile, through
``python -m mnist_lab.names``) takes them from here.
"""

import os
import sys
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
UI_ADDRESS = "http://127.0.0.1:5000"  # where `make ui` serves
CHECKPOINT_RUN_KEY = "mlflow"  # {"run_id", "tracking_uri"} in every checkpoint
CHECKPOINT_DIR_TAG = "checkpoint.dir"  # a run's local checkpoint folder
BEST_TAG = "checkpoint.best"  # a run's best checkpoint file
MODEL_NAME = "classifier"  # a run's logged MLflow model
LAST = "last"  # the stem of the latest checkpoint, and the RESUME= value that finds one


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The given URI, else ``$MLFLOW_TRACKING_URI``, else the local sqlite store."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def artifact_root(uri: str) -> str | None:
    """Where a local sqlite store keeps its artifacts: ``artifacts/`` beside its file (the default
    store is the whole ``mlruns/`` folder); a server keeps its own (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return str(Path(uri.removeprefix("sqlite:///")).parent / "artifacts")


def no_local_store(uri: str) -> bool:
    """A local sqlite store whose file does not exist yet (asking MLflow anything would make it)."""
    return uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file()


if __name__ == "__main__":  # `python -m mnist_lab.names uri|artifacts`: for the Makefile's targets
    uri = resolve_tracking_uri()
    print({"uri": uri, "artifacts": artifact_root(uri) or ""}[sys.argv[1]])
