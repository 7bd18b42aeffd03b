"""The LightningModule: loss, metrics and optimisation for any network that maps images to logits.

The network arrives fully built (``net``), so this file knows nothing about activations, inits
or layer shapes. Lightning's loops switch ``train()``/``eval()``; nothing here overrides that.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from mnist_lab.errors import ConfigError, DivergenceError
from mnist_lab.models.components import MLP
from mnist_lab.models.net_config import build, describe

Batch = tuple[Tensor, Tensor]


class MNISTClassifier(L.LightningModule):
    """Classifies with cross-entropy on logits (``F.cross_entropy`` applies log-softmax itself).

    The network's description (``class_path`` and ``init_args``) is saved with the hyperparameters, so
    ``MNISTClassifier.load_from_checkpoint(path)`` rebuilds the network the checkpoint's weights belong to.

    Args:
        net: any ``nn.Module`` (default: :class:`MLP`) from images ``(N, 1, 28, 28)`` to logits
            ``(N, num_classes)``, or its description ``{"class_path": ..., "init_args": {...}}``.
        optimizer: a callable ``params -> Optimizer`` (LightningCLI: ``--model.optimizer``).
        scheduler: a callable ``optimizer -> LRScheduler`` or None. One with ``set_horizon``
            (:class:`~mnist_lab.models.schedules.CosineDecay`) is told the run's length.
        scheduler_interval: step the scheduler every ``step`` or every ``epoch``.
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if isinstance(net, Mapping):  # rebuilt from a checkpoint's description
            net = build(net)
        self.net = net if net is not None else MLP()
        with warnings.catch_warnings():  # the module itself is replaced by its description just below
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters(logger=False)
        self._describe_network()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        metrics = MetricCollection({"acc": MulticlassAccuracy(num_classes=num_classes, average="micro")})
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        self.test_confusion_matrix: Tensor | None = None  # the last test's, summed over all processes
        self.example_input_array = torch.zeros(2, 1, 28, 28)

    def _describe_network(self) -> None:
        """Keep plain data only in ``hparams``: the network's description, never the module itself.

        LightningCLI hands over the config it built the network from; a network built in Python
        describes itself (see :func:`~mnist_lab.models.net_config.remember_config`). Optimiser and
        scheduler callables given in Python are dropped: they cannot be stored as data.
        """
        if not isinstance(self.hparams.get("net"), Mapping):
            description = describe(self.net)
            if description is None:
                rank_zero_warn(
                    f"{type(self.net).__name__} cannot describe itself, so checkpoints will not rebuild it: "
                    "decorate its class with mnist_lab.models.net_config.remember_config, or pass "
                    "net=... to load_from_checkpoint"
                )
                self.hparams.pop("net", None)
            else:
                self.hparams["net"] = description
        for key in ("optimizer", "scheduler"):
            if not isinstance(self.hparams.get(key), (Mapping, type(None))):
                self.hparams.pop(key)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def _step(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits, y), logits.argmax(dim=1), y

    def on_train_start(self) -> None:
        # The sanity-check validation pass must not count towards the best val/acc.
        self.val_acc_best.reset()
        groups = [g for optimizer in self.trainer.optimizers for g in optimizer.param_groups]
        if self.trainer.ckpt_path and groups and all(g["lr"] == 0 for g in groups):
            raise ConfigError(
                f"the learning rate is 0 at the resumed step {self.trainer.global_step}: the schedule ended with "
                "the original run. Use CosineDecay (it re-plans for a longer run), or start a new run"
            )

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, preds, y = self._step(batch)
        if not torch.isfinite(loss):  # stop before backward: the weights stay the last good ones
            raise DivergenceError(self._divergence_message(loss))
        self.train_loss(loss)
        step_metrics = self.train_metrics(preds, y)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log_dict(step_metrics, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _divergence_message(self, loss: Tensor) -> str:
        group = self.trainer.optimizers[0].param_groups[0] if self.trainer.optimizers else {}
        lr, base = group.get("lr", float("nan")), group.get("initial_lr", group.get("lr", float("nan")))
        checkpoint = self.trainer.checkpoint_callback
        kept = getattr(checkpoint, "last_model_path", "") or getattr(checkpoint, "best_model_path", "")
        where = f"the last good checkpoint is {kept}" if kept else "no checkpoint was saved before it"
        return (
            f"training diverged at step {self.trainer.global_step} (epoch {self.current_epoch}): the loss is "
            f"{float(loss)} at learning rate {lr:.3g} (base {base:.3g}). Try a smaller LR (e.g. LR={base / 10:.3g}), "
            "gradient clipping "
            f"(--trainer.gradient_clip_val=1.0), batch norm (BN=true) or a smaller init; {where}"
        )

    def on_train_epoch_end(self) -> None:
        self.log("train/loss_epoch", self.train_loss.compute())
        self.log("train/acc_epoch", self.train_metrics["acc"].compute())
        self.train_loss.reset()
        self.train_metrics.reset()

    def _evaluate(self, batch: Batch, loss_metric: MeanMetric, metrics: MetricCollection) -> tuple[Tensor, Tensor]:
        loss, preds, y = self._step(batch)
        loss_metric.update(loss)
        metrics.update(preds, y)
        return preds, y

    def _log_epoch(self, prefix: str, loss_metric: MeanMetric, metrics: MetricCollection) -> dict[str, Tensor]:
        """Log ``<prefix>/loss`` and the collection for the epoch, then reset both."""
        values = metrics.compute()
        self.log(f"{prefix}/loss", loss_metric.compute(), prog_bar=True)
        self.log_dict(values, prog_bar=True)
        loss_metric.reset()
        metrics.reset()
        return values

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        values = self._log_epoch("val", self.val_loss, self.val_metrics)
        self.val_acc_best(values["val/acc"])
        self.log("val/acc_best", self.val_acc_best.compute())

    def test_step(self, batch: Batch, batch_idx: int) -> Tensor:
        preds, y = self._evaluate(batch, self.test_loss, self.test_metrics)
        self.test_confusion.update(preds, y)
        return preds  # callbacks (the misclassified-digits figure) read them

    def on_test_epoch_start(self) -> None:
        self.test_confusion.reset()

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test", self.test_loss, self.test_metrics)
        # compute() gathers across processes, so every rank calls it; callbacks read the result
        self.test_confusion_matrix = self.test_confusion.compute()

    def predict_step(self, batch: Batch, batch_idx: int) -> Tensor:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).softmax(dim=1)

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        interval = self.hparams.scheduler_interval
        horizon = self.trainer.estimated_stepping_batches if interval == "step" else self.trainer.max_epochs
        scheduler = self.scheduler_factory(optimizer)
        if hasattr(scheduler, "set_horizon"):
            scheduler.set_horizon(int(horizon))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}
