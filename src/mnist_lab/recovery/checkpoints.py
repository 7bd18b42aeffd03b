"""Find the checkpoint a user means (a path, ``last``, or an MLflow run id) and read what it holds.

A checkpoint names its network (``hyper_parameters.net``) and its MLflow run (``mlflow.run_id``),
so ``RESUME=<anything>`` rebuilds the right network and continues the right run.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnist_lab.errors import ConfigError

RUN_ID = re.compile(r"^[0-9a-f]{32}$")
CHECKPOINT_RUN_KEY = "mlflow"
CHECKPOINT_DIR_TAG = "checkpoint.dir"
LAST = "last"


@dataclass
class CheckpointInfo:
    """What the CLI needs from a checkpoint before anything is built."""

    path: Path
    hparams: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] | None = None  # {"run_id", "experiment_id", "tracking_uri"}
    epochs_done: int = 0  # whole epochs trained
    mid_epoch: bool = False  # saved between two batches of an epoch
    learning_rates: list[float] = field(default_factory=list)  # every parameter group's, when saved

    @property
    def net(self) -> dict[str, Any] | None:
        net = self.hparams.get("net")
        return net if isinstance(net, dict) else None


def newest_last(root: Path) -> Path:
    """The most recently written ``last.ckpt`` under ``root``."""
    found = sorted(root.rglob(f"{LAST}.ckpt"), key=lambda p: p.stat().st_mtime) if root.is_dir() else []
    if not found:
        raise ConfigError(f"no {LAST}.ckpt under {root}/: train first, or give a checkpoint path or an MLflow run id")
    return found[-1]


def run_checkpoint(run_id: str, tracking_uri: str) -> Path:
    """A run's ``last.ckpt``: the local file it recorded, else the copy logged with the run."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"no MLflow run {run_id} in {tracking_uri}") from None
    folder = run.data.tags.get(CHECKPOINT_DIR_TAG)
    if folder and (Path(folder) / f"{LAST}.ckpt").is_file():
        return Path(folder) / f"{LAST}.ckpt"
    try:
        return Path(client.download_artifacts(run_id, f"{LAST}/{LAST}.ckpt", tempfile.mkdtemp(prefix="ckpt-")))
    except (MlflowException, OSError):
        raise ConfigError(f"run {run_id} has no {LAST}.ckpt, neither in {folder} nor among its artifacts") from None


def resolve_checkpoint(ref: str, root: Path, tracking_uri: str) -> Path:
    """``last`` | a checkpoint file | an MLflow run id -> a checkpoint file."""
    if ref == LAST:
        return newest_last(root)
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    if RUN_ID.match(ref):
        return run_checkpoint(ref, tracking_uri)
    raise ConfigError(
        f"checkpoint {ref!r} does not exist; give a checkpoint file, `{LAST}` (the newest {LAST}.ckpt under "
        f"{root}/) or an MLflow run id"
    )


def read_checkpoint(path: Path) -> CheckpointInfo:
    """Read the hyperparameters, the run and the progress from a checkpoint (no code runs: weights_only)."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated file, a pickle, not a checkpoint at all
        raise ConfigError(f"{path} is not a readable checkpoint: {type(err).__name__}: {err}".split("\n")[0]) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{path} is not a Lightning checkpoint (it has no state_dict)")
    # an epoch's training is "processed" before its end-of-epoch hooks (where checkpoints are saved) run
    epochs = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    return CheckpointInfo(
        path=path,
        hparams=dict(checkpoint.get("hyper_parameters", {})),
        run=checkpoint.get(CHECKPOINT_RUN_KEY),
        learning_rates=[
            float(group.get("lr", 0.0))
            for state in checkpoint.get("optimizer_states", [])
            for group in state.get("param_groups", [])
        ],
        epochs_done=int(epochs.get("processed", 0)),
        mid_epoch=epochs.get("started", 0) > epochs.get("processed", 0),
    )
