"""``python -m mnist_lab.tracking.model_uri <run id>``: the run's logged model URI, or one clear error.

``make serve`` calls it first, so an unknown run id or a run without a model ends with one line
instead of an MLflow traceback.
"""

from __future__ import annotations

import sys

from mnist_lab.errors import ConfigError
from mnist_lab.tracking.logger import resolve_tracking_uri

MODEL_NAME = "classifier"


def model_uri(run_id: str, tracking_uri: str | None = None) -> str:
    """``runs:/<id>/classifier`` for a run that logged its model."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = resolve_tracking_uri(tracking_uri)
    client = MlflowClient(uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"no MLflow run {run_id!r} in {uri}; `make ui` lists the runs") from None
    mlflow.set_tracking_uri(uri)
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_NAME}'",
        output_format="list",
    )
    if not models:
        raise ConfigError(f"run {run_id} logged no model {MODEL_NAME!r} (it logs one after its test: run_test=true)")
    return f"runs:/{run_id}/{MODEL_NAME}"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0]:
        print("error: give the run id: make serve RUN=<run id>", file=sys.stderr)
        raise SystemExit(2)
    try:
        print(model_uri(args[0]))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
