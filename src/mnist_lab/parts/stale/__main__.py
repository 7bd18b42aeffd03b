"""``make runs-clean``: end KILLED the RUNNING runs of this host whose process is gone."""

from __future__ import annotations

import socket

from mnist_lab.errors import ConfigError, command
from mnist_lab.names import no_local_store, resolve_tracking_uri
from mnist_lab.parts.stale import end_stale_runs


@command
def main() -> None:
    uri = resolve_tracking_uri()
    if no_local_store(uri):
        return  # no store yet: nothing can be stale, and making one here would be a surprise
    from mlflow import MlflowClient

    try:
        ended = end_stale_runs(MlflowClient(uri))
    except Exception as err:  # noqa: BLE001 - sqlalchemy, MLflow and OS errors: "store unusable"
        raise ConfigError(
            f"cannot open the MLflow store {uri}: {type(err).__name__}: {err}"
        ) from None
    if not ended:
        print(f"no RUNNING run of {socket.gethostname()} has lost its process ({uri})")


if __name__ == "__main__":
    raise SystemExit(main())
