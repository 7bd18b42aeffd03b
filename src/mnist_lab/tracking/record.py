"""What a run records besides Lightning's metrics: provenance, the dataset, where its checkpoints
are, the epoch time and learning rate, and the tested network as an MLflow model."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.model_summary import ModelSummary
from lightning.pytorch.utilities.rank_zero import rank_zero_only

import mnist_lab
from mnist_lab.names import BEST_TAG, CHECKPOINT_DIR_TAG, CHECKPOINT_RUN_KEY
from mnist_lab.tracking.logger import RunLogger, run_logger
from mnist_lab.tracking.model import log_pytorch_model


class RunRecord(L.Callback):
    """Fills the trainer's ``RunLogger`` run: tags, the dataset input, checkpoint locations (and the
    run's id inside every checkpoint), ``time/epoch_s``, ``lr-<optimiser>`` and, after the test,
    the model (``log_model``)."""

    def __init__(self, log_model: bool = True) -> None:
        self.log_model = log_model
        self.epoch_start = 0.0
        self.tagged: str | None = None

    @rank_zero_only
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None or self.tagged == logger.run_id:  # fit then test: once
            return
        self.tagged = logger.run_id
        client, run_id = logger.experiment, logger.run_id
        client.set_tag(run_id, "git.dirty", git_dirty())
        client.set_tag(run_id, "mnist_lab.version", mnist_lab.__version__)
        if not logger.resumed:
            trainable = ModelSummary(pl_module, max_depth=0).trainable_parameters
            client.log_param(run_id, "params/trainable", trainable)
            log_dataset(logger, trainer.datamodule)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = time.perf_counter()  # an epoch resumed mid-way gets no epoch start
        logger, folder = run_logger(trainer), getattr(trainer.checkpoint_callback, "dirpath", None)
        if logger is not None and folder and trainer.is_global_zero:  # RESUME=<run id> finds it
            logger.experiment.set_tag(
                logger.run_id, CHECKPOINT_DIR_TAG, str(Path(folder).resolve())
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger, best = (
            run_logger(trainer),
            getattr(trainer.checkpoint_callback, "best_model_path", ""),
        )
        if logger is not None and best and trainer.is_global_zero:  # make predict CKPT=<run id>
            logger.experiment.set_tag(logger.run_id, BEST_TAG, str(Path(best).resolve()))

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict
    ) -> None:
        """Every checkpoint names its MLflow run, so resuming from it continues that run."""
        if (logger := run_logger(trainer)) is not None:
            checkpoint[CHECKPOINT_RUN_KEY] = {
                "run_id": logger.run_id,
                "tracking_uri": logger.tracking_uri,
            }

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = time.perf_counter()
        rates = {f"lr-{type(o).__name__}": o.param_groups[0]["lr"] for o in trainer.optimizers}
        for logger in trainer.loggers:  # LearningRateMonitor's metric, which needs no logger here
            logger.log_metrics(rates, step=trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("time/epoch_s", time.perf_counter() - self.epoch_start, sync_dist=True)

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger, data = run_logger(trainer), trainer.datamodule
        if logger is None or not self.log_model:
            return
        shape = getattr(data, "image_shape", pl_module.example_input_array.shape[1:])
        dataset = str(getattr(data, "hparams", {}).get("dataset", ""))
        names = list(getattr(data, "class_names", None) or [])
        log_pytorch_model(logger.tracking_uri, logger.run_id, pl_module.net, shape, dataset, names)


def git_dirty() -> str:
    """Whether tracked files differ from the commit (MLflow tags it); ``unknown`` outside git."""
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(mnist_lab.__file__).parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return str(bool(status.strip())).lower()


def log_dataset(logger: RunLogger, datamodule: Any) -> None:
    """The data's IDX files (``datamodule.raw_dir``) as the run's dataset input."""
    from mlflow.data.sources import LocalArtifactDatasetSource
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    raw_dir: Path | None = getattr(datamodule, "raw_dir", None)
    files = sorted(raw_dir.glob("*-ubyte")) if raw_dir is not None and raw_dir.is_dir() else []
    if not files:
        return
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    name = str(datamodule.hparams.get("dataset") or raw_dir.parent.name)
    source = LocalArtifactDatasetSource(str(raw_dir.resolve()))
    dataset = Dataset(name, digest.hexdigest()[:32], "local", source.to_json())
    classes = ",".join(getattr(datamodule, "class_names", []))
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training"), InputTag("classes", classes)]
    logger.experiment.log_inputs(logger.run_id, datasets=[DatasetInput(dataset, tags)])
