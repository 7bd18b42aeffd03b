"""Fills the run that ``RunLogger`` opened: tags, parameter counts, epoch time, test figures, the model.

Lightning's ``MLFlowLogger`` already logs metrics and checkpoints; this callback adds what it does
not: provenance tags, a timing metric, figures of the test set, a servable MLflow model, and the
error of a failed run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.model_summary import ModelSummary
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor

from mnist_lab.errors import TrainingInterrupted
from mnist_lab.recovery.checkpoints import CHECKPOINT_DIR_TAG, CHECKPOINT_RUN_KEY
from mnist_lab.tracking.dataset_input import dataset_input
from mnist_lab.tracking.logger import RunLogger
from mnist_lab.tracking.model_uri import MODEL_NAME
from mnist_lab.tracking.plots import confusion_figure, misclassified_figure
from mnist_lab.tracking.run_info import run_tags


def run_logger(trainer: L.Trainer) -> RunLogger | None:
    """The trainer's ``RunLogger``, if it has one."""
    return next((lg for lg in trainer.loggers if isinstance(lg, RunLogger)), None)


class MLflowRunCallback(L.Callback):
    """Adds provenance, timing, figures and the logged model to the active MLflow run.

    Args:
        log_model: log ``net`` with ``mlflow.pytorch.log_model`` after the test (best weights).
        max_misclassified: digits in the misclassified-grid figure.
    """

    def __init__(self, log_model: bool = True, max_misclassified: int = 48) -> None:
        self.log_model = log_model
        self.max_misclassified = max_misclassified
        self._epoch_start = 0.0
        self._wrong: list[tuple[Tensor, Tensor, Tensor]] = []
        self._tagged_run: str | None = None

    # ---- provenance -------------------------------------------------------------------------
    @rank_zero_only
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None or self._tagged_run == logger.run_id:  # fit then test: tag once
            return
        for key, value in run_tags().items():
            logger.experiment.set_tag(logger.run_id, key, value)
        recorded = dataset_input(trainer.datamodule)  # MLflow's dataset tracking: source, digest, schema
        if recorded is not None:
            logger.experiment.log_inputs(logger.run_id, datasets=[recorded])
        summary = ModelSummary(pl_module, max_depth=0)  # Lightning's own count, as its summary table shows
        logger.log_hyperparams(
            {"params/total": summary.total_parameters, "params/trainable": summary.trainable_parameters}
        )
        self._tagged_run = logger.run_id

    # ---- timing -----------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("time/epoch_s", time.perf_counter() - self._epoch_start, sync_dist=True)  # mean over ranks

    # ---- test figures and model -------------------------------------------------------------
    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._wrong = []

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: Any
    ) -> None:
        kept = sum(len(w[0]) for w in self._wrong)
        if outputs is None or kept >= self.max_misclassified:
            return
        x, y = batch
        wrong = outputs != y
        take = self.max_misclassified - kept
        self._wrong.append((x[wrong][:take].cpu(), y[wrong][:take].cpu(), outputs[wrong][:take].cpu()))

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        class_names = getattr(trainer.datamodule, "class_names", None)
        confusion = getattr(pl_module, "test_confusion", None)
        matrix = getattr(pl_module, "test_confusion_matrix", None)
        if confusion is not None and matrix is not None:
            figure = confusion_figure(confusion, matrix, class_names)
            logger.experiment.log_figure(logger.run_id, figure, "figures/confusion_matrix.png")
        if self._wrong:
            images, true, pred = (torch.cat(parts) for parts in zip(*self._wrong, strict=True))
            fig = misclassified_figure(images, true, pred, class_names=class_names)
            logger.experiment.log_figure(logger.run_id, fig, "figures/misclassified.png")
        if self.log_model:
            log_pytorch_model(logger, pl_module, trainer.datamodule)

    # ---- resuming ---------------------------------------------------------------------------
    @rank_zero_only
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record where the run's checkpoints are, so ``RESUME=<run id>`` finds its ``last.ckpt``."""
        logger = run_logger(trainer)
        folder = getattr(trainer.checkpoint_callback, "dirpath", None)
        if logger is not None and folder:
            logger.experiment.set_tag(logger.run_id, CHECKPOINT_DIR_TAG, str(Path(folder).resolve()))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Every checkpoint names its MLflow run, so resuming from it continues that run."""
        logger = run_logger(trainer)
        if logger is not None and trainer.is_global_zero:
            checkpoint[CHECKPOINT_RUN_KEY] = {
                "run_id": logger.run_id,
                "experiment_id": logger.experiment_id,
                "tracking_uri": logger._tracking_uri,
            }

    # ---- failure ----------------------------------------------------------------------------
    @rank_zero_only
    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        if isinstance(exception, (KeyboardInterrupt, TrainingInterrupted, SIGTERMException)):
            logger.exit_status = "KILLED"
        message = f"{type(exception).__name__}: {exception}"[:5000]
        logger.experiment.set_tag(logger.run_id, "error", message)


def log_pytorch_model(logger: RunLogger, pl_module: L.LightningModule, datamodule: Any = None) -> None:
    """Log the network (logits out) as an MLflow model: signature and input example of the data's
    image shape, and the dataset and class names (the meaning of each logit) as metadata."""
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    import mnist_lab

    net = pl_module.net if hasattr(pl_module, "net") else pl_module
    was_training = net.training
    net.eval()
    example = torch.zeros(2, *getattr(datamodule, "image_shape", (1, 28, 28)))
    with torch.no_grad():
        output = net(example.to(pl_module.device)).cpu().numpy()
    signature = infer_signature(example.numpy(), output)
    metadata = {"output": "logits"}
    if datamodule is not None and hasattr(datamodule, "class_names"):
        metadata.update(dataset=str(datamodule.hparams.get("dataset", "")), class_names=list(datamodule.class_names))
    mlflow.set_tracking_uri(logger._tracking_uri)
    logger.flush()  # leaving start_run marks the run FINISHED for a moment: with every metric already in it
    with mlflow.start_run(run_id=logger.run_id):
        mlflow.pytorch.log_model(
            net.cpu() if pl_module.device.type != "cpu" else net,
            name=MODEL_NAME,
            input_example=example.numpy(),
            signature=signature,
            metadata=metadata,
            code_paths=[str(Path(mnist_lab.__file__).parent)],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
        )
    net.to(pl_module.device)
    net.train(was_training)
