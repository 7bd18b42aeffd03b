"""The diagnostics callback: logs ``diag/*`` metrics every N steps and figures at the end of fit.

Metric names (``<i>``: depth index, 0 = first hidden layer, last = output layer):
``diag/grad_norm/<i>`` (weight-gradient L2 norm), ``diag/grad_sign_agreement/<i>`` (per unit, the
share of its weight gradients with the majority sign, averaged: near 1 when the layer's inputs are
all positive, about 0.5 when they are zero-centred), ``diag/saturation/<i>`` (sigmoid/tanh family
only), ``diag/dead_frac/<i>``, ``diag/act_mean/<i>``, ``diag/act_std/<i>``,
``diag/distinct_units/<i>``, and the mode gap ``diag/mode_gap/train_acc``,
``diag/mode_gap/eval_acc``, ``diag/mode_gap/gap`` (eval - train). On the training step itself
(:mod:`lab.diagnostics.flow`): ``diag/preact_grad/<i>`` (per example, the norm of the loss's
gradient w.r.t. the layer's output ``Wx + b``) and ``diag/rel_grad/<i>`` (``||grad W|| / ||W||``),
with the gradient norms, and ``diag/update_cos/<i>`` (per unit, the cosine between two consecutive
weight updates, averaged), logged at the second of the two steps.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch import Tensor

from lab.diagnostics.flow import PreactGrads, UpdateCosine, relative_grads
from lab.diagnostics.plots import activation_histograms, grad_norm_by_depth
from lab.diagnostics.probes import (
    BlockNetwork,
    LayerStats,
    activation_stats,
    grad_norms,
    grad_sign_agreement,
    mode_gap,
)

log = logging.getLogger(__name__)


class DiagnosticsCallback(L.Callback):
    """Gradient flow, saturation, dead units, symmetry and the train/eval mode gap, in MLflow.

    Args:
        enabled: switch all diagnostics off (``make train DIAG=false``; on the command line
            ``--trainer.callbacks.init_args.enabled=false`` while it is the last callback).
        every_n_steps: how often to measure gradient norms (step 0, at init, is always measured).
        probe_size: examples in the fixed validation batch the activation statistics use.
        probe_every_n_steps: how often to measure the activation statistics and the mode gap on
            the probe batch (default: 4 x ``every_n_steps``; rounded up to a multiple of it).
        figures: log the gradient-norm-by-depth and activation-histogram figures at the end of fit.
    """

    def __init__(
        self,
        enabled: bool = True,
        every_n_steps: int = 50,
        probe_size: int = 512,
        figures: bool = True,
        probe_every_n_steps: int | None = None,
    ):
        self.enabled = enabled
        self.every_n_steps = max(1, every_n_steps)
        probe_every = probe_every_n_steps or 4 * self.every_n_steps
        self.probe_every_n_steps = (
            -(-max(1, probe_every) // self.every_n_steps) * self.every_n_steps
        )
        self.probe_size = probe_size
        self._measuring = False  # enabled, and the network has blocks to measure (set at fit start)
        self.figures = figures
        self.probe: tuple[Tensor, Tensor] | None = None
        self.epoch_grad_norms: dict[int, list[float]] = {}
        self._last_grads: list[float] = []
        self._last_stats: list[LayerStats] = []
        self.preact = PreactGrads()
        self.updates = UpdateCosine(self.every_n_steps)
        self._step = 0

    def _active(self, pl_module: L.LightningModule) -> bool:
        return self.enabled and isinstance(getattr(pl_module, "net", None), BlockNetwork)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._measuring = self._active(pl_module)
        if self.enabled and not self._measuring:
            log.warning(
                "diagnostics need a network with .blocks and .output; they are off for this run"
            )
        if not self._measuring:
            return
        loader = trainer.datamodule.val_dataloader() if trainer.datamodule is not None else None
        if loader is None:
            return
        xs, ys, n = [], [], 0
        for x, y in loader:
            xs.append(x)
            ys.append(y)
            n += len(y)
            if n >= self.probe_size:
                break
        self.probe = (
            torch.cat(xs)[: self.probe_size].to(pl_module.device),
            torch.cat(ys)[: self.probe_size].to(pl_module.device),
        )

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object, idx: int
    ) -> None:
        if not self._measuring:
            return
        self._step = trainer.global_step
        if self._step % self.every_n_steps == 0:
            self.preact.attach(pl_module.net)
        self.updates.before(self._step, pl_module.net)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: object,
        batch: object,
        idx: int,
    ) -> None:
        if not self._measuring:
            return
        self.preact.detach()
        cosines = self.updates.after(self._step, pl_module.net)
        if cosines is not None:
            for logger in trainer.loggers:
                logger.log_metrics(
                    {f"diag/update_cos/{i}": c for i, c in enumerate(cosines)}, step=self._step
                )

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step % self.every_n_steps or not self._measuring:
            return
        self._last_grads = grad_norms(pl_module.net)
        metrics = {f"diag/grad_norm/{i}": g for i, g in enumerate(self._last_grads)}
        metrics.update({f"diag/preact_grad/{i}": g for i, g in enumerate(self.preact.norms())})
        metrics.update(
            {f"diag/rel_grad/{i}": g for i, g in enumerate(relative_grads(pl_module.net))}
        )
        self.preact.detach()
        agreement = grad_sign_agreement(pl_module.net)
        metrics.update({f"diag/grad_sign_agreement/{i}": a for i, a in enumerate(agreement)})
        if self.probe is not None and trainer.global_step % self.probe_every_n_steps == 0:
            metrics.update(self.measure(pl_module))
        for logger in trainer.loggers:  # RunLogger keeps them and writes in batches
            logger.log_metrics(metrics, step=trainer.global_step)

    def measure(self, pl_module: L.LightningModule) -> dict[str, float]:
        """Activation statistics and the mode gap on the probe batch."""
        assert self.probe is not None
        x, y = self.probe
        self._last_stats = activation_stats(pl_module.net, x)
        metrics: dict[str, float] = {}
        for i, s in enumerate(self._last_stats):
            metrics.update(
                {
                    f"diag/act_mean/{i}": s.mean,
                    f"diag/act_std/{i}": s.std,
                    f"diag/dead_frac/{i}": s.dead_frac,
                    f"diag/distinct_units/{i}": float(s.distinct_units),
                }
            )
            if s.saturation is not None:
                metrics[f"diag/saturation/{i}"] = s.saturation
        train_acc, eval_acc = mode_gap(pl_module.net, x, y)
        metrics.update(
            {
                "diag/mode_gap/train_acc": train_acc,
                "diag/mode_gap/eval_acc": eval_acc,
                "diag/mode_gap/gap": eval_acc - train_acc,
            }
        )
        return metrics

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._measuring and self._last_grads:
            self.epoch_grad_norms[trainer.current_epoch] = list(self._last_grads)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not (self._measuring and self.figures) or trainer.global_rank != 0:
            return
        if self.probe is not None:
            self._last_stats = activation_stats(pl_module.net, self.probe[0])
        figures = {}
        if self.epoch_grad_norms:
            figures["diagnostics/grad_norm_by_depth.png"] = grad_norm_by_depth(
                self.epoch_grad_norms
            )
        if self._last_stats:
            figures["diagnostics/activation_histograms.png"] = activation_histograms(
                self._last_stats
            )
        for logger in trainer.loggers:
            experiment = getattr(logger, "experiment", None)
            if hasattr(experiment, "log_figure"):
                for path, fig in figures.items():
                    experiment.log_figure(logger.run_id, fig, path)
