"""What ``last``, a checkpoint file, an MLflow run id or a registered model names: the one place
that resolves them, and the guards that keep a resumed run what it was.

A checkpoint names its MLflow run (``CHECKPOINT_RUN_KEY``) and Lightning keeps the network's config
in its hyperparameters, so each of them rebuilds the right network and continues the right run.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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

MAY_CHANGE = {
    "data.init_args." + k for k in ("data_dir", "download", "on_device")
}  # where the data is, not what
SAME_TRAINING = (  # the trainer's settings that decide what a step and an epoch compute
    *(
        "precision",
        "accumulate_grad_batches",
        "gradient_clip_val",
        "gradient_clip_algorithm",
        "overfit_batches",
    ),
    *("limit_train_batches", "limit_val_batches", "val_check_interval", "check_val_every_n_epoch"),
)
RUN_ID = re.compile(r"^(?:runs:/)?([0-9a-f]{32})/?$")
REGISTERED = re.compile(
    r"^models:/([^/@]+)(?:@([^/]+)|/(\d+))$"
)  # models:/<name>@<alias> | models:/<name>/<version>


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
    """The hyperparameters, run and progress of a whole checkpoint (``weights_only``: no code runs)."""
    import torch

    check_whole(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated file, a pickle, not a checkpoint at all
        reason = re.split(r"\.\s|\n", str(err))[
            0
        ]  # the first sentence: torch adds a paragraph of advice
        raise ConfigError(
            f"{path} is not a readable checkpoint: {type(err).__name__}: {reason}"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{path} is not a Lightning checkpoint (it has no state_dict)")
    epochs = (
        checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    )
    return CheckpointInfo(
        path=path,
        hparams=dict(checkpoint.get("hyper_parameters", {})),
        data=dict(checkpoint.get("datamodule_hyper_parameters") or {}),
        run=checkpoint.get(CHECKPOINT_RUN_KEY),
        epochs_done=int(epochs.get("processed", 0)),
        mid_epoch=epochs.get("started", 0) > epochs.get("processed", 0),
        learning_rates=[
            g.get("lr", 0.0)
            for s in checkpoint.get("optimizer_states", [])
            for g in s["param_groups"]
        ],
    )


def _client(tracking_uri: str, run_id: str) -> Any:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            f"no MLflow run {run_id} in {tracking_uri}; `make ui` lists the runs"
        ) from None
    if run.info.lifecycle_stage == "deleted":
        raise ConfigError(
            f"run {run_id} is deleted in {tracking_uri}: restore it first "
            f"(`MLFLOW_TRACKING_URI={tracking_uri} .venv/bin/mlflow runs restore --run-id {run_id}`)"
        )
    return client


def run_checkpoint(run_id: str, tracking_uri: str, which: str = LAST) -> Path:
    """A run's ``last`` or ``best`` checkpoint: its local file if it reads, else the copy ``MLFlowLogger``
    uploaded (to ``<stem>/<stem>.ckpt``) when the run ended."""
    client = _client(tracking_uri, run_id)
    tags = client.get_run(run_id).data.tags
    folder = tags.get(CHECKPOINT_DIR_TAG)
    local = Path(tags.get(BEST_TAG, "")) if which != LAST else Path(f"{folder}/{LAST}.ckpt")
    damaged = None
    if local.is_file():
        try:
            return read_checkpoint(local).path
        except ConfigError as err:  # truncated or overwritten: the logged copy may still be whole
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
        raise ConfigError(
            f"{damaged}, and run {run_id} logged no copy of it"
            if damaged
            else f"run {run_id} has no {which} checkpoint, neither in {folder} nor among its artifacts"
        ) from None
    if damaged:
        print(
            f"warning: {damaged}; using the copy logged with run {run_id} instead", file=sys.stderr
        )
    return copy


def last_interrupted(tracking_uri: str, experiment: str) -> Path:
    """The ``last.ckpt`` of the newest KILLED or FAILED run of ``experiment``: never a FINISHED run (extend one
    by its id and more epochs) nor a RUNNING one (it may still be training)."""
    from mlflow import MlflowClient

    client, runs = MlflowClient(tracking_uri), []
    found = None if no_local_store(tracking_uri) else client.get_experiment_by_name(experiment)
    if found is not None:
        runs = client.search_runs(
            [found.experiment_id], order_by=["attributes.end_time DESC"]
        )  # no IN on status
    for run in (r for r in runs if r.info.status in ("KILLED", "FAILED")):
        try:
            path = run_checkpoint(run.info.run_id, tracking_uri)
        except ConfigError:
            continue  # stopped before its first checkpoint
        print(
            f"resuming the newest interrupted run: {run.info.run_name!r} ({run.info.run_id}, {run.info.status})"
        )
        return path
    raise ConfigError(
        f"no interrupted (KILLED or FAILED) run with a {LAST}.ckpt in experiment {experiment!r} to resume; "
        "to train a finished run longer, give its id and more epochs: RESUME=<run id> EPOCHS=<more>"
    )


def resolve(
    ref: str, root: Path, tracking_uri: str, which: str = LAST, experiment: str | None = None
) -> Path:
    """``last`` | a checkpoint file | a run id -> a checkpoint file. ``last`` is :func:`last_interrupted`'s
    when an ``experiment`` is given (resuming a tracked run), else the newest ``last.ckpt`` under ``root``."""
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
                f"no {LAST}.ckpt under {root}/: train first, or give a checkpoint file or a run id"
            )
        return found[-1]
    if Path(ref).expanduser().is_file():
        return Path(ref).expanduser()
    if match := RUN_ID.match(ref):
        return run_checkpoint(match.group(1), tracking_uri, which)
    if REGISTERED.match(ref):
        return run_checkpoint(registered_run(ref, tracking_uri), tracking_uri, which)
    raise ConfigError(
        f"checkpoint {ref!r} does not exist; give a checkpoint file, `{LAST}` or an MLflow run id"
    )


def check_resumable(
    info: CheckpointInfo, max_epochs: int | None, scheduler: str, tested: bool
) -> None:
    """Resuming must leave something to do (a run whose fit ended, untested, gets its test), at a
    learning rate above 0."""
    done = (
        max_epochs is not None
        and max_epochs >= 0
        and not info.mid_epoch
        and info.epochs_done >= max_epochs
    )
    if done and tested:
        raise ConfigError(
            f"{info.path} has already trained {info.epochs_done} epoch(s), and max_epochs is {max_epochs}: "
            f"nothing is left to train. Give more epochs (e.g. EPOCHS={info.epochs_done * 2}) to train on"
        )
    if (
        not done
        and info.learning_rates
        and not any(info.learning_rates)
        and not scheduler.endswith("CosineDecay")
    ):
        raise ConfigError(
            f"{info.path} was saved at learning rate 0: its schedule ({scheduler or 'none'}) had ended. Use "
            "mnist_lab.models.schedules.CosineDecay (it re-plans for a longer run) or start a new run"
        )


def _leaves(tree: Any, key: str = "") -> dict[str, Any]:
    """``{"a.b": leaf}`` of nested dicts; tuples as lists (a config's ``(1, 2)`` is ``[1, 2]`` in a checkpoint)."""
    if isinstance(tree, dict):
        return {
            k: v
            for name, value in tree.items()
            for k, v in _leaves(value, f"{key}.{name}".lstrip(".")).items()
        }
    return {key: json.loads(json.dumps(tree, default=str))}


def check_same_settings(
    model: dict[str, Any],
    data: dict[str, Any],
    training: dict[str, Any],
    info: CheckpointInfo,
    tracking_uri: str,
) -> tuple[dict[str, str], str]:
    """Resuming goes on with the checkpoint's model and data, and its run's training settings: a ``MODEL``,
    recipe, preset or variable that contradicts them is an error (Lightning would rebuild the checkpoint's model,
    yet take the new settings, and the run's config would no longer say how it was trained). The trainer's
    settings (``training``: param name -> value) are not in the checkpoint: they are compared with its run's
    params. ``max_epochs`` may change."""
    saved_data = (
        {"class_path": info.data.get("_class_path"), "init_args": info.data} if info.data else {}
    )
    saved = _leaves({"model": info.hparams, "data": saved_data})
    given = _leaves({"model": model, "data": data})
    changed = [
        f"{k}={given[k]!r} (the checkpoint's: {saved[k]!r})"
        for k in given
        if k in saved and given[k] != saved[k] and k not in MAY_CHANGE
    ]
    params, status = run_params(info, tracking_uri)
    for name, value in training.items():
        if name in params and str(value) != params[name]:
            changed.append(f"{name.replace('/', '.')}={value!r} (the run's: {params[name]})")
    if changed:
        raise ConfigError(
            f"resuming {info.path} with other settings than it was trained with: {'; '.join(changed[:3])}"
            f"{' ...' if len(changed) > 3 else ''}. Give the first command's MODEL, PRESET and variables "
            "(only EPOCHS and DATA_DIR may change), or train a new run"
        )
    return params, status


def run_params(info: CheckpointInfo, tracking_uri: str) -> tuple[dict[str, str], str]:
    """The params and status of the checkpoint's run, if it is in this store and can be read."""
    if not info.run or info.run.get("tracking_uri") != tracking_uri:
        return {}, ""
    from mlflow import MlflowClient

    try:
        run = MlflowClient(tracking_uri).get_run(info.run["run_id"])
    except Exception:  # noqa: BLE001 - a store unreachable: opening the run says so
        return {}, ""
    if run.info.lifecycle_stage == "deleted":
        _client(tracking_uri, run.info.run_id)  # says so, with the command that restores it
    return run.data.params, run.info.status


def check_net_args(typed: list[str], info: CheckpointInfo) -> None:
    """A ``--model.net...`` argument typed on the command line must not contradict the checkpoint's network
    (Lightning rebuilds the checkpoint's own, so it would be silently ignored)."""
    net = info.hparams.get("net")
    if not isinstance(net, dict):
        return
    for arg in typed:
        name, _, value = arg.partition("=")
        if not name.startswith("--model.net"):
            continue
        key = name.removeprefix("--model.net").lstrip(".").removeprefix("init_args.")
        saved: Any = (
            net.get("class_path") if key in ("", "class_path") else net.get("init_args", {})
        )
        for part in key.split(".") if key not in ("", "class_path") else []:
            saved = saved.get(part) if isinstance(saved, dict) else None
        given = yaml.safe_load(value) if value else None
        if (
            given != saved
            and not str(saved).endswith("." + value)
            and str(saved).lower() != value.lower()
        ):
            raise ConfigError(
                f"{name}={value} conflicts with the checkpoint's network ({key or 'class_path'}={saved!r}); "
                "the checkpoint rebuilds its own network, so drop that argument (or train a new model)"
            )


def registered_run(uri: str, tracking_uri: str) -> str:
    """The run whose model a registered version (``models:/<name>@<alias>`` or ``models:/<name>/<n>``) is."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, number = REGISTERED.match(uri).groups()
    client = MlflowClient(tracking_uri)
    try:
        version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except MlflowException:
        raise ConfigError(
            f"no model version {uri} in {tracking_uri}: `make register RUN=<run id>` makes one"
        ) from None
    return version.run_id


def load_classifier(ref: str | Path) -> Any:
    """The ``Classifier`` of a checkpoint, run id or registered model (its best checkpoint), in eval mode
    on the CPU, with ``dataset`` naming its data. Load only checkpoints you trust: they are pickles."""
    import torch

    from mnist_lab.models.classifier import Classifier

    path = resolve(str(ref), Path("."), resolve_tracking_uri(), which="best")
    read_checkpoint(path)  # whole, and a checkpoint
    model = Classifier.load_from_checkpoint(path, map_location="cpu", weights_only=False).eval()
    data = torch.load(path, map_location="cpu", weights_only=False).get(
        "datamodule_hyper_parameters"
    )
    model.dataset = (data or {}).get("dataset") or "mnist"
    return model
