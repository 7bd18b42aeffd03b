"""``make register RUN=<id>``: a run's model becomes the next version of a registered model.

The alias ``@champion`` moves to it (saying what it moved from). Aliases, not MLflow's deprecated
stages: ``models:/mnist-classifier@champion`` always names the current champion, so
``make serve MODEL=`` and ``make predict CKPT=`` follow it without edits.
"""

from __future__ import annotations

import argparse
from typing import Any

from mnist_lab.errors import ConfigError, command
from mnist_lab.names import no_local_store, resolve_tracking_uri
from mnist_lab.parts.serve import model_uri
from mnist_lab.resume import RUN_ID, load_classifier

DEFAULT_NAME = "mnist-classifier"
ALIAS = "champion"


def log_best_checkpoint(run_id: str, tracking_uri: str) -> str:
    """Log the run's best checkpoint as its ``classifier`` (a sweep trial logs none: it is selected
    on validation, not tested); its ``models:/`` URI."""
    from mnist_lab.data.datasets import get_dataset
    from mnist_lab.tracking.model import log_pytorch_model

    model = load_classifier(run_id)
    names = list(get_dataset(model.dataset).class_names)
    log_pytorch_model(
        tracking_uri, run_id, model.net, tuple(model.hparams.input_shape), model.dataset, names
    )
    print(
        f"run {run_id} logged no model: logged its best checkpoint's network "
        "(selected on validation, untested)"
    )
    return str(model_uri(run_id, tracking_uri))


def quality(client: Any, run_id: str) -> str:
    """What is known of a run's model: its test accuracy, else its best validation accuracy."""
    metrics = client.get_run(run_id).data.metrics
    if "test/acc" in metrics:
        return f"test/acc {metrics['test/acc']:.4f}"
    return (
        "untested: selected on validation, "
        f"val/acc_best {metrics.get('val/acc_best', float('nan')):.4f}"
    )


def register(run_id: str, tracking_uri: str, name: str = DEFAULT_NAME, alias: str = ALIAS) -> str:
    """Register the run's ``classifier`` as a new version of ``name``, point ``alias`` at it, and
    say what the alias moved from; the new version's number."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = model_uri(run_id, tracking_uri, required=False) or log_best_checkpoint(
        run_id, tracking_uri
    )
    mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri)
    try:
        before = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        before = None
    version = mlflow.register_model(uri, name).version
    client.set_registered_model_alias(name, alias, version)
    if before is not None:
        print(
            f"@{alias} moves from version {before.version} ({quality(client, before.run_id)}) "
            f"to version {version} ({quality(client, run_id)})"
        )
    return str(version)


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make register", description=__doc__.splitlines()[0])
    parser.add_argument(
        "run", nargs="?", default="", help="the MLflow run id whose model to register"
    )
    parser.add_argument(
        "--name", default=DEFAULT_NAME, help="the registered model (default: %(default)s)"
    )
    parser.add_argument(
        "--alias", default=ALIAS, help="the alias to move to it (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    uri = resolve_tracking_uri()
    if no_local_store(uri):
        # not make one
        raise ConfigError(f"no MLflow store at {uri}: train a run first (`make train`)")
    if not RUN_ID.match(args.run):
        given = f"{args.run!r} is not an MLflow run id: " if args.run else ""
        raise ConfigError(f"{given}make register RUN=<run id> (or STUDY=<sweep>: its best trial)")
    version = register(RUN_ID.match(args.run).group(1), uri, args.name, args.alias)
    print(
        f"registered {args.name} version {version} (@{args.alias}): "
        f"models:/{args.name}@{args.alias}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
