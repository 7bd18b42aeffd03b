"""What ``--ckpt_path`` means to the CLI: which file, which network, which MLflow run.

The checkpoint's own network always wins over the configured one (Lightning then loads its
hyperparameters into ``model``); a network argument typed on the command line that disagrees
with it is an error, never a silent rebuild. When training resumes, the checkpoint's MLflow run
is continued rather than a new one started.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import Namespace

from mnist_lab.errors import ConfigError
from mnist_lab.models.net_config import plain
from mnist_lab.recovery.checkpoints import CheckpointInfo, read_checkpoint, resolve_checkpoint
from mnist_lab.tracking.logger import resolve_tracking_uri

EVALUATING = ("validate", "test", "predict")
NET_PREFIX = "--model.net"


def typed_net_keys(args: Sequence[str]) -> list[str]:
    """``--model.net.init_args.activation=x`` -> ``activation``; ``--model.net=CNN`` -> ``class_path``."""
    keys = []
    for arg in args:
        name = arg.split("=", 1)[0]
        if name != NET_PREFIX and not name.startswith(NET_PREFIX + "."):
            continue
        key = name[len(NET_PREFIX) + 1 :].removeprefix("init_args.")
        keys.append(key or "class_path")
    return keys


def _lookup(net: dict[str, Any], key: str) -> Any:
    if key == "class_path":
        return net.get("class_path")
    value: Any = net.get("init_args") or {}
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def check_net_conflicts(typed: list[str], configured: Any, stored: dict[str, Any]) -> None:
    """Fail when a network argument typed on the command line differs from the checkpoint's network."""
    configured = plain(configured.as_dict() if isinstance(configured, Namespace) else configured or {})
    for key in typed:
        given, saved = _lookup(configured, key), _lookup(stored, key)
        if given != saved and not (key == "class_path" and str(saved).endswith("." + str(given))):
            raise ConfigError(
                f"--model.net {key}={given!r} conflicts with the checkpoint's network ({key}={saved!r}); "
                "the checkpoint rebuilds its own network, so drop that argument (or train a new model)"
            )


def _logger_args(config: Namespace) -> Namespace | None:
    logger = config.trainer.get("logger")
    if isinstance(logger, Namespace) and str(logger.get("class_path", "")).endswith("RunLogger"):
        return logger.init_args
    return None


def continue_run(config: Namespace, info: CheckpointInfo) -> str | None:
    """Point the run logger at the checkpoint's MLflow run, when that run is in the current store."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    logger = _logger_args(config)
    if logger is None or not info.run or not info.run.get("run_id"):
        return None
    uri = resolve_tracking_uri(logger.get("tracking_uri"))
    try:
        MlflowClient(uri).get_run(info.run["run_id"])
    except MlflowException:
        print(f"note: the checkpoint's run {info.run['run_id']} is not in {uri}; a new run starts")
        return None
    logger.run_id = info.run["run_id"]
    return logger.run_id


def check_epochs(config: Namespace, info: CheckpointInfo) -> None:
    """Resuming must leave something to train: a finished run needs a larger ``max_epochs``."""
    max_epochs = config.trainer.get("max_epochs")
    if max_epochs is None or max_epochs < 0 or info.mid_epoch or info.epochs_done < max_epochs:
        return
    raise ConfigError(
        f"{info.path} has already trained {info.epochs_done} epoch(s), and max_epochs is {max_epochs}: "
        f"nothing is left to train. Give more epochs (e.g. EPOCHS={info.epochs_done * 2}, "
        f"--trainer.max_epochs={info.epochs_done * 2}) to train on"
    )


def check_schedule(config: Namespace, info: CheckpointInfo) -> None:
    """A schedule that ended at learning rate 0 must not be continued: CosineDecay re-plans, others cannot."""
    scheduler = config.model.get("scheduler")
    class_path = str(scheduler.get("class_path", "")) if isinstance(scheduler, Namespace) else ""
    if class_path.endswith("CosineDecay") or not info.learning_rates or any(info.learning_rates):
        return
    raise ConfigError(
        f"{info.path} was saved at learning rate 0: its schedule ({class_path or 'none'}) had ended, and resuming "
        "would train at 0. Use mnist_lab.models.schedules.CosineDecay (it re-plans for a longer run) or start a "
        "new run"
    )


def apply_checkpoint(subcommand: str, config: Namespace, args: Sequence[str]) -> CheckpointInfo | None:
    """Resolve ``ckpt_path`` (path | ``last`` | run id) and reconcile the config with the checkpoint."""
    ref = config.get("ckpt_path")
    if not ref:
        if subcommand in EVALUATING and not config.get("allow_untrained"):
            raise ConfigError(
                f"`{subcommand}` needs trained weights: give --ckpt_path=<checkpoint file | last | MLflow run id> "
                "(make: RESUME=...), or --allow_untrained=true to use the untrained network on purpose"
            )
        return None
    logger = _logger_args(config)
    uri = resolve_tracking_uri(logger.get("tracking_uri") if logger is not None else None)
    root = Path(config.trainer.get("default_root_dir") or ".")
    path = resolve_checkpoint(str(ref), root, uri)
    config.ckpt_path = str(path)
    info = read_checkpoint(path)
    if info.net is None:
        print(f"note: {path} does not describe its network; the configured network is used")
    else:
        check_net_conflicts(typed_net_keys(args), config.model.get("net"), info.net)
    if subcommand == "fit":
        check_epochs(config, info)
        check_schedule(config, info)
        continue_run(config, info)
    return info
