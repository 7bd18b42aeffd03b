"""The LightningModule: loss, metrics and optimisation for any network that maps images to logits.

The network arrives built (``net``), so this file knows nothing about activations, inits or
layers. Lightning's loops switch ``train()``/``eval()``; nothing here overrides that. When the CLI
builds the model, Lightning stores the network's config in the checkpoint's hyperparameters, so
``Classifier.load_from_checkpoint(path)`` rebuilds the network the weights belong to.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from mnist_lab.errors import DivergenceError

Batch = tuple[Tensor, Tensor]
log = logging.getLogger(__name__)


class Classifier(L.LightningModule):
    """Trains ``net`` with ``loss`` (cross-entropy on the logits by default); predicts the argmax.

    Args:
        net: any ``nn.Module`` from images ``(N, *input_shape)`` to logits ``(N, num_classes)``.
        optimizer: a callable ``params -> Optimizer`` (LightningCLI: ``--model.optimizer``).
        scheduler: a callable ``optimizer -> LRScheduler``, or None. One with ``set_horizon``
            (:class:`~mnist_lab.models.schedules.CosineDecay`) is told the run's length.
        scheduler_interval: step the scheduler every ``step`` or every ``epoch``.
        loss: any module ``(logits, labels) -> loss``; default ``nn.CrossEntropyLoss()``.
        num_classes, input_shape: what the data is (the CLI links them from the datamodule).
        compile: ``torch.compile`` the network (GPU only; ignored, with a log line, on a CPU).
        channels_last: keep weights and 4-D inputs ``channels_last`` (faster convolutions).
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        loss: nn.Module | None = None,
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        compile: bool = False,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        with warnings.catch_warnings():  # modules built in Python are dropped just below
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters(logger=False)
        # Built by the CLI, these are configs (dicts). Built in Python, they are dropped: give them
        # to load_from_checkpoint(net=...) again.
        for key in ("net", "loss", "optimizer", "scheduler"):
            if not isinstance(self.hparams.get(key), (dict, type(None))):
                del self.hparams[key]
        self.net = net
        self.loss_fn = loss if loss is not None else nn.CrossEntropyLoss()
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        # Predictions are argmaxes and labels come checked from the data: no per-update validation.
        metrics = MetricCollection(
            {"acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)}
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        # reduced over processes at epoch end
        self.train_loss, self.val_acc_best = MeanMetric(), MaxMetric()
        # in checkpoints: a resumed epoch and the best so far continue where they stopped
        for metric in (self.train_metrics, self.train_loss, self.val_acc_best):
            metric.persistent(True)
        self.example_input_array = torch.zeros(2, *input_shape)  # the summary's sizes
        self.compile_net, self.channels_last, self._compiled = compile, channels_last, None

    def setup(self, stage: str) -> None:
        """Speed options; the weights keep their names, so checkpoints load either way."""
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if self.compile_net and self._compiled is None:
            if self.trainer.strategy.root_device.type != "cuda":
                log.info(
                    "compile speeds up GPU runs only; ignored on %s",
                    self.trainer.strategy.root_device,
                )
            else:  # kept out of the module tree: no ``_orig_mod.`` keys in checkpoints
                self.__dict__["_compiled"] = torch.compile(self.net)

    def forward(self, x: Tensor) -> Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return (self._compiled or self.net)(x)

    def _shared_step(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self(x)
        return self.loss_fn(logits, y), logits, y

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, logits, y = self._shared_step(batch)
        # Stop before backward, with the last good weights. On a GPU the check syncs, so it runs
        # only on logged steps.
        check = loss.device.type == "cpu" or batch_idx % self.trainer.log_every_n_steps == 0
        if check and not torch.isfinite(loss):
            raise diverged(self.trainer, float(loss.detach()))
        self.train_metrics.update(logits.detach(), y)
        self.train_loss.update(loss.detach())
        # Only on the steps the logger writes: a log call is a sizeable part of an MLP step.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log("train/loss_step", loss.detach(), prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        # Metric objects are logged once an epoch: Lightning moves a logged Metric to the device at
        # every log call, a cost per-step logging would pay each step. Here it also computes,
        # reduces over processes and resets them (docs/performance.md, issue 14).
        self.log("train/loss_epoch", self.train_loss)
        self.log_dict(self.train_metrics)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss, logits, y = self._shared_step(batch)
        self.val_metrics.update(logits, y)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True)
        self.log_dict(self.val_metrics, prog_bar=True)

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:  # the sanity check's validation must not count
            # compute() is cached for Lightning's log
            self.val_acc_best(self.val_metrics["acc"].compute())
            self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, logits, y = self._shared_step(batch)
        self.test_metrics.update(logits, y)
        self.log("test/loss", loss, sync_dist=True)
        self.log_dict(self.test_metrics)
        return logits.argmax(dim=1)  # callbacks (the test figures) read the predictions

    def predict_step(self, batch: Batch | Tensor, batch_idx: int) -> Tensor:
        return self(batch[0] if isinstance(batch, (tuple, list)) else batch).softmax(dim=1)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        interval = self.hparams.scheduler_interval
        scheduler = self.scheduler_factory(optimizer)
        if hasattr(scheduler, "set_horizon"):
            steps = (
                self.trainer.estimated_stepping_batches
                if interval == "step"
                else self.trainer.max_epochs
            )
            scheduler.set_horizon(int(steps))
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }


def diverged(trainer: L.Trainer, loss: float) -> DivergenceError:
    """Where it happened, at which learning rate, what to try, and which checkpoint is kept."""
    group = trainer.optimizers[0].param_groups[0] if trainer.optimizers else {}
    lr, base = group.get("lr", float("nan")), group.get("initial_lr", group.get("lr", float("nan")))
    kept = [
        c.best_model_path for c in trainer.checkpoint_callbacks if getattr(c, "best_model_path", "")
    ]
    return DivergenceError(
        f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): "
        f"the loss is {loss} at learning rate {lr:.3g} (base {base:.3g}). "
        f"Try a smaller LR (e.g. LR={base / 10:.3g}), "
        "gradient clipping (--trainer.gradient_clip_val=1.0), batch norm (BN=true) "
        "or a smaller init; "
        + (
            f"the checkpoints saved before it are kept: {', '.join(kept)}"
            if kept
            else "no checkpoint was saved"
        )
    )
