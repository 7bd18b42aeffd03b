"""The LightningModule: loss, metrics and optimisation for any network that maps images to logits.

The network arrives fully built (``net``), so this file knows nothing about activations, inits
or layer shapes. Lightning's loops switch ``train()``/``eval()``; nothing here overrides that.

The training step is the hot path, so it does as little per step as it can (README, "Performance"):
the epoch metrics are fed every ``METRIC_UPDATE_EVERY`` steps with those steps' outcomes at once
(one update instead of 32; no per-step ``compute()``), the per-step values
``train/loss`` and ``train/acc`` are computed and logged on the steps the logger writes
(every ``trainer.log_every_n_steps``), and gradient clipping skips its no-op rescale on the CPU.
The default loss is ``F.cross_entropy`` itself (:mod:`~mnist_lab.models.losses`), with no wrapper.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import lightning as L
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from mnist_lab.errors import DivergenceError
from mnist_lab.models.clipping import clip_gradients
from mnist_lab.models.components import MLP
from mnist_lab.models.divergence import divergence_message
from mnist_lab.models.losses import LossName, OutputName, get_loss
from mnist_lab.models.net_config import build, describe

Batch = tuple[Tensor, Tensor]

log = logging.getLogger(__name__)
METRIC_UPDATE_EVERY = 32  # training steps whose outcomes update the epoch metrics in one call


class MNISTClassifier(L.LightningModule):
    """Classifies by the argmax of the network's logits, trained with the ``(loss, output)`` pair's loss.

    The network's description (``class_path`` and ``init_args``) is saved with the hyperparameters, so
    ``MNISTClassifier.load_from_checkpoint(path)`` rebuilds the network the checkpoint's weights belong to.

    Args:
        net: any ``nn.Module`` (default: :class:`MLP`) from images ``(N, 1, 28, 28)`` to logits
            ``(N, num_classes)``, or its description ``{"class_path": ..., "init_args": {...}}``.
        optimizer: a callable ``params -> Optimizer`` (LightningCLI: ``--model.optimizer``).
        scheduler: a callable ``optimizer -> LRScheduler`` or None. One with ``set_horizon``
            (:class:`~mnist_lab.models.schedules.CosineDecay`) is told the run's length.
        scheduler_interval: step the scheduler every ``step`` or every ``epoch``.
        loss, output: the training loss and the squashing it sees (:mod:`~mnist_lab.models.losses`):
            ``cross_entropy`` + ``softmax`` (default, ``F.cross_entropy`` on the logits), ``cross_entropy``
            + ``sigmoid`` (per-class binary cross-entropy, from the logits), ``mse`` + either (squared
            error of the squashed outputs against one-hot targets). Predictions are the logits' argmax.
        num_classes, input_shape: what the data is (the CLI links them from the datamodule).
        compile: run the network through ``torch.compile`` (GPU only; ignored, with a log line, on CPU).
        channels_last: keep the network's weights and 4-D inputs in ``channels_last`` memory format,
            the fast layout for convolutions on a GPU and, with oneDNN, on a CPU too.
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["step", "epoch"] = "step",
        num_classes: int = 10,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        compile: bool = False,
        channels_last: bool = False,
        loss: LossName = "cross_entropy",
        output: OutputName = "softmax",
    ) -> None:
        super().__init__()
        self.loss_fn = get_loss(loss, output)  # first, so a bad name fails before anything is built
        if isinstance(net, Mapping):  # rebuilt from a checkpoint's description
            net = build(net)
        self.net = net if net is not None else MLP()
        with warnings.catch_warnings():  # the module itself is replaced by its description just below
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`")
            self.save_hyperparameters(logger=False)
        self._describe_network()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        # Predictions are argmaxes and labels come checked from the data, so skip per-update validation.
        accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro", validate_args=False)
        metrics = MetricCollection({"acc": accuracy})
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_classes=num_classes)
        self.test_confusion_matrix: Tensor | None = None  # the last test's, summed over all processes
        self.example_input_array = torch.zeros(2, *input_shape)  # for the summary's sizes and FLOPs
        self.compile_net, self.channels_last = compile, channels_last
        self._compiled_net: nn.Module | None = None
        self._outcomes: list[tuple[Tensor, Tensor, Tensor]] = []  # (loss, preds, targets) not yet in the metrics

    def setup(self, stage: str) -> None:
        """Speed options; the weights keep their names, so checkpoints load either way."""
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)
        if not self.compile_net or self._trainer is None:
            return
        if self.trainer.strategy.root_device.type != "cuda":
            log.info("compile speeds up GPU runs only; ignored on %s", self.trainer.strategy.root_device)
            return
        if self._compiled_net is None:
            # Kept out of the module tree (no ``_orig_mod.`` keys, ``net`` stays a picklable nn.Module).
            self.__dict__["_compiled_net"] = torch.compile(self.net)

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
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        net = self._compiled_net if self._compiled_net is not None else self.net
        return net(x)

    def _step(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        x, y = batch
        logits = self(x)
        return self.loss_fn(logits, y), logits.argmax(dim=1), y

    def on_train_start(self) -> None:
        # The sanity-check validation pass must not count towards the best val/acc.
        self.val_acc_best.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        loss, preds, y = self._step(batch)
        # A NaN/inf loss stops the run before backward, so the weights stay the last good ones. On the CPU
        # the check is free; on a GPU it would synchronise every step, so it runs on the logged steps.
        if (loss.device.type == "cpu" or self._logs_this_step()) and not torch.isfinite(loss):
            raise DivergenceError(divergence_message(self.trainer, loss))
        # The epoch figures: every step counts; they are fed in groups (a metric update costs ~1% of a step).
        self._outcomes.append((loss.detach(), preds, y))
        if len(self._outcomes) >= METRIC_UPDATE_EVERY:
            self._update_train_metrics()
        if self._logs_this_step():
            # The step values, on the steps the logger records (and the progress bar shows them).
            self.log("train/loss", loss.detach(), on_step=True, on_epoch=False, prog_bar=True)
            acc = (preds == y).float().mean()
            self.log("train/acc", acc, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _logs_this_step(self) -> bool:
        """True on the steps Lightning writes step metrics to the logger (every ``log_every_n_steps``)."""
        if self._trainer is None:
            return True
        every = self.trainer.log_every_n_steps
        return every > 0 and ((self.global_step + 1) % every == 0 or self.trainer.should_stop)

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        """Lightning's clipping by norm, minus the rescale by 1.0 on the CPU (see :func:`clip_gradients`)."""
        clip_gradients(self, optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _update_train_metrics(self) -> None:
        """Feed the kept steps' outcomes to the epoch metrics: the same result as one update per step."""
        if not self._outcomes:
            return
        losses, preds, targets = zip(*self._outcomes, strict=True)
        self._outcomes = []
        self.train_loss.update(torch.stack(losses))  # weight 1 per step, as per-step updates give
        self.train_metrics.update(torch.cat(preds), torch.cat(targets))

    def on_train_epoch_start(self) -> None:
        self._outcomes = []  # a stopped epoch's leftovers belong to no epoch

    def on_train_epoch_end(self) -> None:
        self._update_train_metrics()
        # Metric objects: Lightning computes them (reduced across processes) and resets them.
        self.log("train/loss_epoch", self.train_loss)
        self.log("train/acc_epoch", self.train_metrics["acc"])

    def _evaluate(self, batch: Batch, loss_metric: MeanMetric, metrics: MetricCollection) -> tuple[Tensor, Tensor]:
        # Lightning validates inside fit under no_grad only; inference mode also skips autograd's bookkeeping.
        with torch.inference_mode():
            loss, preds, y = self._step(batch)
            loss_metric.update(loss)
            metrics.update(preds, y)
        return preds, y

    def _log_epoch(self, prefix: str, loss_metric: MeanMetric, metrics: MetricCollection) -> Tensor:
        """Log ``<prefix>/loss`` and the collection as metric objects; return the (synced) accuracy."""
        accuracy = metrics["acc"].compute()  # cached: Lightning's own compute() reuses it
        self.log(f"{prefix}/loss", loss_metric, prog_bar=True)
        self.log_dict(metrics, prog_bar=True)
        return accuracy

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_loss, self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self._log_epoch("val", self.val_loss, self.val_metrics))
        # the same value on every process already; sync_dist only tells Lightning so
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

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
