"""What ``last``, a checkpoint file, an MLflow run id or ``models:/<name>@<alias>`` names: the one
place that turns them into a whole checkpoint file. A checkpoint names its MLflow run and Lightning
keeps the network's config in it, so each rebuilds the right network and continues the right run.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_lab.checkpointing import check_whole
from mnist_lab.errors import ConfigError
from mnist_lab.names import (
    BEST_TAG,
    CHECKPOINT_DIR_TAG,
    CHECKPOINT_RUN_KEY,
    LAST,
    no_local_store,
    resolve_tracking_uri,
)

RUN_ID = re.compile(r"^(?:runs:/)?([0-9a-f]{32})/?$")
REGISTERED = re.compile(r"^models:/([^/@]+)(?:@([^/]+)|/(\d+))$")  # @<alias> or /<version>


@dataclass
class CheckpointInfo:
    """What the CLI needs from a checkpoint before anything is built."""

    path: Path
    hparams: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)  # the datamodule's hyperparameters
    run: dict[str, Any] | None = None
    epochs_done: int = 0  # whole epochs trained
    mid_epoch: bool = False  # saved between two batches of an epoch
    learning_rates: list[float] = field(default_factory=list)


def read_checkpoint(path: Path) -> CheckpointInfo:
    """A whole checkpoint's settings, run and progress (``weights_only``: no code runs)."""
    import torch

    check_whole(path)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a pickle, or no checkpoint at all
        reason = re.split(r"\.\s|\n", str(err))[0]  # torch adds a paragraph of advice
        raise ConfigError(
            f"{path} is not a readable checkpoint: {type(err).__name__}: {reason}"
        ) from None
    if not isinstance(saved, dict) or "state_dict" not in saved:
        raise ConfigError(f"{path} is not a Lightning checkpoint (it has no state_dict)")
    epochs = saved.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    rates = [
        g.get("lr", 0.0)
        for state in saved.get("optimizer_states", [])
        for g in state["param_groups"]
    ]
    return CheckpointInfo(
        path=path,
        hparams=dict(saved.get("hyper_parameters", {})),
        data=dict(saved.get("datamodule_hyper_parameters") or {}),
        run=saved.get(CHECKPOINT_RUN_KEY),
        epochs_done=int(epochs.get("processed", 0)),
        mid_epoch=epochs.get("started", 0) > epochs.get("processed", 0),
        learning_rates=rates,
    )


def client_of(tracking_uri: str, run_id: str) -> Any:
    """A client of the store holding ``run_id``, active (a deleted run says how to restore it)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if no_local_store(tracking_uri):  # asking would create it
        raise ConfigError(f"no MLflow run {run_id}: there is no store at {tracking_uri} yet")
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"no MLflow run {run_id} in {tracking_uri}; `make ui` lists the runs"
        ) from None
    if run.info.lifecycle_stage == "deleted":
        restore = (
            f"MLFLOW_TRACKING_URI={tracking_uri} .venv/bin/mlflow runs restore --run-id {run_id}"
        )
        raise ConfigError(
            f"run {run_id} is deleted in {tracking_uri}: restore it first (`{restore}`)"
        )
    return client


def run_checkpoint(run_id: str, tracking_uri: str, which: str = LAST) -> Path:
    """A run's ``last`` or ``best`` checkpoint: its local file if whole, else its logged copy."""
    client = client_of(tracking_uri, run_id)
    tags = client.get_run(run_id).data.tags
    folder = tags.get(CHECKPOINT_DIR_TAG)
    local = Path(tags.get(BEST_TAG, "")) if which != LAST else Path(f"{folder}/{LAST}.ckpt")
    damaged = None
    if local.is_file():
        try:
            return read_checkpoint(local).path
        except ConfigError as err:  # truncated or overwritten: the logged copy may be whole
            damaged = err
    try:
        copy = Path(
            client.download_artifacts(run_id, f"{local.stem}/{local.stem}.ckpt", tempfile.mkdtemp())
        )
        read_checkpoint(copy)
    except ConfigError as err:
        raise ConfigError(
            f"{damaged}; its copy logged with run {run_id} is damaged too: {err}"
        ) from None
    except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
        missing = (
            f"run {run_id} has no {which} checkpoint, neither in {folder} nor among its artifacts"
        )
        raise ConfigError(
            f"{damaged}, and run {run_id} logged no copy of it" if damaged else missing
        ) from None
    if damaged:
        print(
            f"warning: {damaged}; using the copy logged with run {run_id} instead", file=sys.stderr
        )
    return copy


def last_interrupted(tracking_uri: str, experiment: str) -> Path:
    """The ``last.ckpt`` of the newest KILLED or FAILED run of ``experiment``: never a FINISHED run
    (extend one by its id and more epochs) nor a RUNNING one (it may still be training)."""
    from mlflow import MlflowClient

    runs, found = [], None
    if not no_local_store(tracking_uri):  # asking would create it
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
    if found is not None:  # the store has no IN on status
        runs = client.search_runs([found.experiment_id], order_by=["attributes.end_time DESC"])
    for run in (r for r in runs if r.info.status in ("KILLED", "FAILED")):
        try:
            path = run_checkpoint(run.info.run_id, tracking_uri)
        except ConfigError:
            continue  # stopped before its first checkpoint
        print(f"resuming the newest interrupted run: {run.info.run_name!r} ({run.info.run_id})")
        return path
    raise ConfigError(
        f"no interrupted (KILLED or FAILED) run with a {LAST}.ckpt in experiment {experiment!r} to "
        "resume; to train a finished run longer, give its id and more epochs: "
        "RESUME=<run id> EPOCHS=<more>"
    )


def resolve(
    ref: str, root: Path, tracking_uri: str, which: str = LAST, experiment: str | None = None
) -> Path:
    """A reference -> a checkpoint file. ``last``: the newest interrupted run of ``experiment`` when
    one is given (a tracked run), else the newest ``last.ckpt`` under ``root``."""
    if ref == LAST and experiment:
        return last_interrupted(tracking_uri, experiment)
    if ref == LAST:
        found = (
            sorted(root.rglob(f"{LAST}.ckpt"), key=lambda p: p.stat().st_mtime)
            if root.is_dir()
            else []
        )
        if not found:
            raise ConfigError(
                f"no {LAST}.ckpt under {root}/: train first, or give a file or a run id"
            )
        return found[-1]
    if Path(ref).expanduser().is_file():
        return Path(ref).expanduser()
    if match := RUN_ID.match(ref):
        return run_checkpoint(match.group(1), tracking_uri, which)
    if REGISTERED.match(ref):
        return run_checkpoint(registered_run(ref, tracking_uri), tracking_uri, which)
    raise ConfigError(
        f"checkpoint {ref!r} does not exist; give a checkpoint file, `{LAST}` or a run id"
    )


def registered_run(uri: str, tracking_uri: str) -> str:
    """The run whose model a registered version (``models:/<name>@<alias>``, ``/<n>``) is."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, number = REGISTERED.match(uri).groups()
    if no_local_store(tracking_uri):  # asking would create it
        raise ConfigError(f"no model version {uri}: there is no store at {tracking_uri} yet")
    client = MlflowClient(tracking_uri)
    try:
        version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except MlflowException:
        made = "`make register RUN=<run id>` makes one"
        raise ConfigError(f"no model version {uri} in {tracking_uri}: {made}") from None
    return version.run_id


def load_classifier(ref: str | Path) -> Any:
    """The ``Classifier`` a reference names (a run's best checkpoint), in eval mode on the CPU, with
    ``dataset`` naming its data. Load only checkpoints you trust: they are pickles."""
    import torch

    from mnist_lab.models.classifier import Classifier

    path = read_checkpoint(resolve(str(ref), Path("."), resolve_tracking_uri(), which="best")).path
    model = Classifier.load_from_checkpoint(path, map_location="cpu", weights_only=False).eval()
    data = torch.load(path, map_location="cpu", weights_only=False).get(
        "datamodule_hyper_parameters"
    )
    model.dataset = (data or {}).get("dataset") or "mnist"
    return model
