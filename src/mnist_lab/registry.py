"""``make register RUN=<id>``: a run's logged model becomes the next version of a registered model, and the alias
``@champion`` moves to it. Aliases, not MLflow's deprecated stages: ``models:/mnist-classifier@champion`` always
names the current champion, so ``make serve MODEL=`` and ``make predict CKPT=`` follow it without edits."""

from __future__ import annotations

import argparse
import sys

from mnist_lab.checkpoints import RUN_ID, model_uri
from mnist_lab.errors import ConfigError

DEFAULT_NAME = "mnist-classifier"
ALIAS = "champion"


def register(run_id: str, tracking_uri: str, name: str = DEFAULT_NAME, alias: str = ALIAS) -> str:
    """Register the run's ``classifier`` as a new version of ``name``, point ``alias`` at it; its version number."""
    import mlflow

    uri = model_uri(run_id, tracking_uri)  # the run exists and logged its model, else a ConfigError
    mlflow.set_tracking_uri(tracking_uri)
    version = mlflow.register_model(uri, name).version
    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version)
    return str(version)


def main(argv: list[str] | None = None) -> int:
    from mnist_lab.tracking.logger import resolve_tracking_uri

    parser = argparse.ArgumentParser(prog="python -m mnist_lab.registry", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the MLflow run id whose logged model to register")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the registered model (default: %(default)s)")
    parser.add_argument("--alias", default=ALIAS, help="the alias to move to the new version (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if not RUN_ID.match(args.run):
            raise ConfigError(f"{args.run!r} is not an MLflow run id: make register RUN=<run id>")
        version = register(RUN_ID.match(args.run).group(1), resolve_tracking_uri(), args.name, args.alias)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"registered {args.name} version {version} (@{args.alias}): models:/{args.name}@{args.alias}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
