"""What ``--ckpt_path`` may do: resuming goes on with the checkpoint's model and data and its run's
training settings, with something left to do; evaluating uses the checkpoint's own network."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from mnist_lab.errors import ConfigError
from mnist_lab.names import LAST, resolve_tracking_uri
from mnist_lab.resume import CheckpointInfo, client_of, read_checkpoint, resolve

# where, not what
MAY_CHANGE = {f"data.init_args.{k}" for k in ("data_dir", "download", "on_device")}
SAME_TRAINING = (  # the trainer's settings that decide what a step and an epoch compute
    *("precision", "accumulate_grad_batches", "gradient_clip_val", "gradient_clip_algorithm"),
    *("overfit_batches", "limit_train_batches", "limit_val_batches", "val_check_interval"),
    "check_val_every_n_epoch",
)


def prepare(subcommand: str, config: Any, typed: list[str], linked: list[str]) -> None:
    """Turn ``config.ckpt_path`` into a checkpoint file and check it fits the command; a resumed
    fit continues the checkpoint's run. ``linked``: model arguments the data sets when built."""
    logger = config.trainer.get("logger")
    logger_args = logger.get("init_args") if hasattr(logger, "get") else None
    uri = resolve_tracking_uri(logger_args.get("tracking_uri") if logger_args else None)
    experiment = logger_args.get("experiment_name") if subcommand == "fit" and logger_args else None
    root = Path(config.trainer.get("default_root_dir") or ".")
    which = LAST if subcommand == "fit" else "best"  # a run id: resume its last, evaluate its best
    config.ckpt_path = str(resolve(str(config.ckpt_path), root, uri, which, experiment))
    info = read_checkpoint(Path(config.ckpt_path))
    if subcommand != "fit":
        return check_net_args(typed, info)
    training = {f"trainer/{key}": config.trainer.get(key) for key in SAME_TRAINING}
    if not isinstance(config.get("seed_everything"), bool):  # true draws a new seed
        training["seed_everything"] = config.get("seed_everything")
    model = config.model.clone()
    for key in linked:  # set from the data when built: the data's own settings are compared
        if key in model:
            del model[key]
    status = check_same_settings(model.as_dict(), config.data.as_dict(), training, info, uri)
    scheduler = config.model.get("scheduler")
    schedule = str(scheduler and scheduler.get("class_path"))
    check_resumable(info, config.trainer.get("max_epochs"), schedule, tested=status == "FINISHED")
    if logger_args is not None and info.run and info.run.get("tracking_uri") == uri:
        logger_args.run_id = info.run["run_id"]  # continue the checkpoint's MLflow run
    return None


def check_resumable(
    info: CheckpointInfo, max_epochs: int | None, scheduler: str, tested: bool
) -> None:
    """Something must be left to do (a run whose fit ended, untested, gets its test), at a
    learning rate above 0."""
    done = max_epochs is not None and max_epochs >= 0 and not info.mid_epoch
    done = done and info.epochs_done >= max_epochs
    if done and tested:
        raise ConfigError(
            f"{info.path} has already trained {info.epochs_done} epoch(s), and max_epochs is "
            f"{max_epochs}: nothing is left to train. Give more epochs (e.g. EPOCHS="
            f"{info.epochs_done * 2}) to train on"
        )
    ended = info.learning_rates and not any(info.learning_rates)
    if not done and ended and not scheduler.endswith("CosineDecay"):
        raise ConfigError(
            f"{info.path} was saved at learning rate 0: its schedule ({scheduler or 'none'}) had "
            "ended. Use mnist_lab.models.schedules.CosineDecay (it re-plans for a longer run) or "
            "start a new run"
        )


def leaves(tree: Any, key: str = "") -> dict[str, Any]:
    """``{"a.b": leaf}`` of nested dicts; tuples as lists, as a checkpoint holds them."""
    if isinstance(tree, dict):
        return {
            k: v
            for name, value in tree.items()
            for k, v in leaves(value, f"{key}.{name}".lstrip(".")).items()
        }
    return {key: json.loads(json.dumps(tree, default=str))}


def check_same_settings(
    model: dict[str, Any],
    data: dict[str, Any],
    training: dict[str, Any],
    info: CheckpointInfo,
    uri: str,
) -> str:
    """A setting that contradicts the checkpoint's (Lightning would rebuild its model yet take the
    new settings, and the run's config would no longer say how it trained) is an error. The
    trainer's settings (param name -> value) are compared with its run's params. Returns the run's
    status."""
    saved_data = (
        {"class_path": info.data.get("_class_path"), "init_args": info.data} if info.data else {}
    )
    saved = leaves({"model": info.hparams, "data": saved_data})
    given = leaves({"model": model, "data": data})
    changed = [
        f"{k}={given[k]!r} (the checkpoint's: {saved[k]!r})"
        for k in given
        if k in saved and given[k] != saved[k] and k not in MAY_CHANGE
    ]
    params, status = run_params(info, uri)
    for name, value in training.items():
        if name in params and str(value) != params[name]:
            changed.append(f"{name.replace('/', '.')}={value!r} (the run's: {params[name]})")
    if changed:
        raise ConfigError(
            f"resuming {info.path} with other settings than it was trained with: "
            f"{'; '.join(changed[:3])}{' ...' if len(changed) > 3 else ''}. Give the first "
            "command's "
            "MODEL, PRESET and variables (only EPOCHS and DATA_DIR may change), or train a new run"
        )
    return status


def run_params(info: CheckpointInfo, uri: str) -> tuple[dict[str, str], str]:
    """The params and status of the checkpoint's run, if it is in this store (not if deleted)."""
    if not info.run or info.run.get("tracking_uri") != uri:
        return {}, ""
    run = client_of(uri, info.run["run_id"]).get_run(info.run["run_id"])
    return run.data.params, run.info.status


def check_net_args(typed: list[str], info: CheckpointInfo) -> None:
    """A ``--model.net...`` argument typed must not contradict the checkpoint's network, which
    Lightning rebuilds (it would be ignored without a word)."""
    net = info.hparams.get("net")
    for arg in typed if isinstance(net, dict) else []:
        name, _, value = arg.partition("=")
        if not name.startswith("--model.net"):
            continue
        key = name.removeprefix("--model.net").lstrip(".").removeprefix("init_args.")
        saved: Any = (
            net.get("class_path") if key in ("", "class_path") else net.get("init_args", {})
        )
        for part in key.split(".") if key not in ("", "class_path") else []:
            saved = saved.get(part) if isinstance(saved, dict) else None
        same = yaml.safe_load(value) == saved if value else saved is None
        if (
            not same
            and not str(saved).endswith(f".{value}")
            and str(saved).lower() != value.lower()
        ):
            raise ConfigError(
                f"{name}={value} conflicts with the checkpoint's network ({key or 'class_path'}="
                f"{saved!r}); the checkpoint rebuilds its own network, so drop that argument"
            )
