"""Fills the run ``RunLogger`` opened with what the logger does not log: provenance, timing, figures, the model.

Lightning's ``MLFlowLogger`` already logs params, metrics and checkpoints; this callback adds the
code and data versions, the epoch time, test-set figures, a servable MLflow model, the run id in
every checkpoint (so resuming continues the run) and the exception that ended a run.
"""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.model_summary import ModelSummary
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

import mnist_lab
from mnist_lab.checkpoints import CHECKPOINT_DIR_TAG, CHECKPOINT_RUN_KEY, MODEL_NAME
from mnist_lab.tracking.logger import RunLogger, run_logger
from mnist_lab.tracking.plots import confusion_figure, misclassified_figure


class RunArtifacts(L.Callback):
    """Provenance, timing, test figures and the logged model, into the trainer's ``RunLogger`` run.

    Args:
        log_model: log the network with ``mlflow.pytorch.log_model`` after the test (best weights).
        max_misclassified: images in the misclassified-images figure.
    """

    def __init__(self, log_model: bool = True, max_misclassified: int = 48) -> None:
        self.log_model, self.max_misclassified = log_model, max_misclassified
        self._tagged_run: str | None = None
        self._epoch_start = 0.0
        self._wrong: list[tuple[Tensor, Tensor, Tensor]] = []
        self._confusion: MulticlassConfusionMatrix | None = None
        self._matrix: Tensor | None = None

    @rank_zero_only
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None or self._tagged_run == logger.run_id:  # fit then test: once
            return
        self._tagged_run = logger.run_id
        client, run_id = logger.experiment, logger.run_id
        for key, value in {"git.dirty": git_dirty(), "mnist_lab.version": mnist_lab.__version__}.items():
            client.set_tag(run_id, key, value)
        if not logger.resumed:
            client.log_param(run_id, "params/trainable", ModelSummary(pl_module, max_depth=0).trainable_parameters)
            log_dataset(logger, trainer.datamodule)
        elif "error" in client.get_run(run_id).data.tags:  # the stop it names is over: the run goes on
            client.delete_tag(run_id, "error")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record the checkpoint folder, so ``RESUME=<run id>`` finds the run's ``last.ckpt``."""
        self._epoch_start = time.perf_counter()  # an epoch resumed mid-way gets no on_train_epoch_start
        logger, folder = run_logger(trainer), getattr(trainer.checkpoint_callback, "dirpath", None)
        if logger is not None and folder and trainer.is_global_zero:
            logger.experiment.set_tag(logger.run_id, CHECKPOINT_DIR_TAG, str(Path(folder).resolve()))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger, best = run_logger(trainer), getattr(trainer.checkpoint_callback, "best_model_path", "")
        if logger is not None and best and trainer.is_global_zero:  # `make predict CKPT=<run id>` reads it
            logger.experiment.set_tag(logger.run_id, "checkpoint.best", str(Path(best).resolve()))

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        """Every checkpoint names its MLflow run, so resuming from it continues that run."""
        logger = run_logger(trainer)
        if logger is not None:
            checkpoint[CHECKPOINT_RUN_KEY] = {"run_id": logger.run_id, "tracking_uri": logger.tracking_uri}

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        rates = {f"lr-{type(o).__name__}": o.param_groups[0]["lr"] for o in trainer.optimizers}
        for logger in trainer.loggers:  # LearningRateMonitor's metric (it refuses to run without a logger)
            logger.log_metrics(rates, step=trainer.global_step)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.log("time/epoch_s", time.perf_counter() - self._epoch_start, sync_dist=True)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        num_classes = getattr(trainer.datamodule, "num_classes", None) or pl_module.hparams.get("num_classes", 10)
        self._confusion = MulticlassConfusionMatrix(num_classes=num_classes).to(pl_module.device)
        self._wrong = []

    def on_test_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *_: Any
    ) -> None:
        if not isinstance(outputs, Tensor) or self._confusion is None:
            return
        x, y = batch
        self._confusion.update(outputs, y)
        kept = sum(len(w[0]) for w in self._wrong)
        wrong = outputs != y
        take = self.max_misclassified - kept
        if take > 0 and wrong.any():
            self._wrong.append((x[wrong][:take].cpu(), y[wrong][:take].cpu(), outputs[wrong][:take].cpu()))

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # compute() gathers over every process, so every rank calls it
        self._matrix = (
            self._confusion.compute() if self._confusion is not None and self._confusion.update_count else None
        )

    @rank_zero_only
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        names = getattr(trainer.datamodule, "class_names", None)
        if self._matrix is not None:
            figure = confusion_figure(self._confusion, self._matrix, names)
            logger.experiment.log_figure(logger.run_id, figure, "figures/confusion_matrix.png")
        if self._wrong:
            images, true, pred = (torch.cat(parts) for parts in zip(*self._wrong, strict=True))
            figure = misclassified_figure(images, true, pred, class_names=names)
            logger.experiment.log_figure(logger.run_id, figure, "figures/misclassified.png")
        if self.log_model and logger.fault is None:  # MLflow's own calls: no outage can keep them
            data = trainer.datamodule
            shape = getattr(data, "image_shape", pl_module.example_input_array.shape[1:])
            dataset = str(getattr(data, "hparams", {}).get("dataset", ""))
            log_pytorch_model(logger.tracking_uri, logger.run_id, pl_module.net, shape, dataset, names or [])

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        logger = run_logger(trainer)
        if logger is not None and trainer.is_global_zero:
            logger.stopped_by = exception  # RunLogger.finalize, just after, ends the run by it
            logger.experiment.set_tag(logger.run_id, "error", f"{type(exception).__name__}: {exception}"[:5000])


def git_dirty() -> str:
    """Whether tracked files differ from the commit (MLflow tags the commit itself); ``unknown`` outside git."""
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


def fluent_run(tracking_uri: str, run_id: str) -> Any:
    """MLflow's fluent ``start_run`` of ``run_id`` (``log_input`` and ``log_model`` need one), in the run's own
    experiment whatever an earlier ``set_experiment`` in this process chose (else MLflow refuses it)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment(experiment_id=mlflow.MlflowClient(tracking_uri).get_run(run_id).info.experiment_id)
    return mlflow.start_run(run_id=run_id)


def log_dataset(logger: RunLogger, datamodule: Any) -> None:
    """``mlflow.log_input`` of the data's files (``datamodule.raw_dir``): source folder, sha256 digest, classes."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    raw_dir: Path | None = getattr(datamodule, "raw_dir", None)
    files = sorted(raw_dir.glob("*-ubyte")) if raw_dir is not None and raw_dir.is_dir() else []
    if not files:
        return
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    name = str(datamodule.hparams.get("dataset") or raw_dir.parent.name)
    dataset = MetaDataset(LocalArtifactDatasetSource(str(raw_dir.resolve())), name=name, digest=digest.hexdigest()[:32])
    tags = {"classes": ",".join(getattr(datamodule, "class_names", []))}
    with fluent_run(logger.tracking_uri, logger.run_id):  # leaving it ends the run: it is running still
        mlflow.log_input(dataset, context="training", tags=tags)
    logger.experiment.update_run(logger.run_id, status="RUNNING")


class FiniteInput(nn.Module):
    """The logged model: the network, refusing NaN or infinite input, which would give NaN logits (and `make serve`
    an answer that is not JSON); MLflow's server answers the error with HTTP 400."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        if not torch.isfinite(x).all():
            from mlflow.exceptions import MlflowException

            raise MlflowException.invalid_parameter_value("the input holds NaN or infinite values")
        return self.net(x)


def log_pytorch_model(
    tracking_uri: str, run_id: str, net: nn.Module, image_shape: tuple[int, ...], dataset: str, class_names: list[str]
) -> None:
    """Log the network (logits out) as the run's MLflow model, with a signature of the data's image
    shape, and the dataset and class names (the meaning of each logit) as metadata. Pickled (with the
    package's code), so ``mlflow.pytorch.load_model`` gives the ``nn.Module``, not MLflow's default
    ``torch.export`` program, which has no ``.eval()``."""
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    was_training, device = net.training, next(net.parameters()).device
    model = FiniteInput(net).eval().cpu()
    example = torch.zeros(2, *image_shape)
    with torch.no_grad():
        signature = infer_signature(example.numpy(), model(example).numpy())
    metadata = {"output": "logits", "dataset": dataset, "class_names": list(class_names)}
    with fluent_run(tracking_uri, run_id):  # the run ends FINISHED for a moment; finalize follows
        mlflow.pytorch.log_model(
            model,
            name=MODEL_NAME,
            serialization_format="pickle",
            input_example=example.numpy(),
            signature=signature,
            metadata=metadata,
            code_paths=[str(Path(mnist_lab.__file__).parent)],
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
        )
    net.to(device).train(was_training)
