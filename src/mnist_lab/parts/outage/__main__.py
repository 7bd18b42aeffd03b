"""``python -m mnist_lab.parts.outage <unsent_mlflow.jsonl>``: send what the file keeps to
``$MLFLOW_TRACKING_URI``."""

from __future__ import annotations

import sys
from pathlib import Path

from mnist_lab.errors import ConfigError, command
from mnist_lab.names import resolve_tracking_uri
from mnist_lab.parts.outage import UNSENT, send
from mnist_lab.tracking.logger import bound_http_wait


@command
def main(argv: list[str] | None = None) -> None:
    from mlflow import MlflowClient

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not Path(args[0]).is_file():
        raise ConfigError(
            f"give one file of unsent writes: python -m mnist_lab.parts.outage <folder>/{UNSENT}"
        )
    uri = resolve_tracking_uri()
    if uri.startswith("http"):
        bound_http_wait(60)
    print(f"sent {send(Path(args[0]), MlflowClient(uri), uri)} writes to {uri}")


if __name__ == "__main__":
    raise SystemExit(main())
