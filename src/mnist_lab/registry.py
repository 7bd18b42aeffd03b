"""``make register RUN=<id> | STUDY=<sweep>``: a run's model becomes the next version of a registered model, and the
alias ``@champion`` moves to it. Aliases, not MLflow's deprecated stages: ``models:/mnist-classifier@champion``
always names the current champion, so ``make serve MODEL=`` and ``make predict CKPT=`` follow it without edits."""

from __future__ import annotations

import argparse
import sys

from mnist_lab.checkpoints import RUN_ID, model_uri
from mnist_lab.errors import ConfigError, TemplateError
from mnist_lab.stale import no_local_store

DEFAULT_NAME = "mnist-classifier"
ALIAS = "champion"


def sweep_best_run(study: str, tracking_uri: str) -> str:
    """The run of the best trial of the newest sweep named ``study`` (its parent run's ``best.run_id`` tag)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`sweep.study` = '{study}' and tags.`sweep.role` = 'parent'"
    parents = client.search_runs(experiments, query, order_by=["attributes.start_time DESC"]) if experiments else []
    if not parents:
        raise ConfigError(f"no sweep {study!r} in {tracking_uri}: `make sweep NAME={study}` makes one")
    if "best.run_id" not in parents[0].data.tags:
        raise ConfigError(f"sweep {study!r} has no complete trial yet: `make sweep NAME={study} RESUME=1` runs more")
    return parents[0].data.tags["best.run_id"]


def log_best_checkpoint(run_id: str, tracking_uri: str) -> str:
    """Log the run's best checkpoint as its ``classifier`` (a sweep trial logs none: it is selected on validation,
    not tested); its ``models:/`` URI."""
    from mnist_lab.data.datasets import get_dataset
    from mnist_lab.predict import load_classifier
    from mnist_lab.tracking.artifacts import log_pytorch_model

    model = load_classifier(run_id)
    names = list(get_dataset(model.dataset).class_names)
    log_pytorch_model(tracking_uri, run_id, model.net, tuple(model.hparams.input_shape), model.dataset, names)
    print(f"run {run_id} logged no model: logged its best checkpoint's network (selected on validation, untested)")
    return str(model_uri(run_id, tracking_uri))


def register(run_id: str, tracking_uri: str, name: str = DEFAULT_NAME, alias: str = ALIAS) -> str:
    """Register the run's ``classifier`` as a new version of ``name``, point ``alias`` at it; its version number."""
    import mlflow

    uri = model_uri(run_id, tracking_uri, required=False) or log_best_checkpoint(run_id, tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    version = mlflow.register_model(uri, name).version
    mlflow.MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version)
    return str(version)


def main(argv: list[str] | None = None) -> int:
    from mnist_lab.tracking.logger import resolve_tracking_uri

    parser = argparse.ArgumentParser(prog="python -m mnist_lab.registry", description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", default="", help="the MLflow run id whose model to register")
    parser.add_argument("--sweep", default="", help="instead of a run: the best trial of this sweep (study name)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="the registered model (default: %(default)s)")
    parser.add_argument("--alias", default=ALIAS, help="the alias to move to the new version (default: %(default)s)")
    args = parser.parse_args(argv)
    uri = resolve_tracking_uri()
    try:
        if no_local_store(uri):
            raise ConfigError(f"no MLflow store at {uri}: train a run first (`make train`)")  # rather than make one
        if bool(args.run) == bool(args.sweep):
            raise ConfigError("give a run or a sweep: make register RUN=<run id> | STUDY=<sweep study>")
        run = sweep_best_run(args.sweep, uri) if args.sweep else args.run
        if not RUN_ID.match(run):
            raise ConfigError(f"{run!r} is not an MLflow run id: make register RUN=<run id>")
        version = register(RUN_ID.match(run).group(1), uri, args.name, args.alias)
    except TemplateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"registered {args.name} version {version} (@{args.alias}): models:/{args.name}@{args.alias}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
