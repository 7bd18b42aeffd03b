"""The study's own measurements on top of the diagnostics: units judged over many training images.

:class:`StudyDiagnostics` is :class:`~lab.diagnostics.DiagnosticsCallback` plus what some claims
need and the probe batch cannot give. A claim swaps it in for the last callback with
``--trainer.callbacks.class_path=lab.study.probes.StudyDiagnostics`` (the diagnostics' options carry
over) and switches its parts on:

- ``images``: the first N images of the training split. On them, at init, every
  ``unit_every_n_steps`` optimiser updates and at the end, each hidden unit's largest slope
  ``|f'(z)|`` over the N images: ``study/dead/<i>`` is the fraction of layer ``i``'s units whose
  largest slope is below ``slope_threshold`` (one rule for every activation: a leaky unit, whose
  slope never drops under its negative slope, is judged by it too); ``study/revived/<i>`` the
  fraction of the layer's units that were dead at an earlier measurement and are alive now,
  ``study/ever_dead/<i>`` the fraction dead at any measurement so far; ``study/negative/<i>`` the
  fraction whose pre-activation is <= 0 on every image (where a ReLU unit has no gradient);
  ``study/unit_spread/<i>`` the spread of the layer's units across one another (std over units,
  averaged over images) relative to the layer's std: 0 when every unit computes the same function
  (zero init's symmetry);
- ``init_grads``: at init, on those images, each hidden layer's activation std
  (``study/act_std/<i>``) and the RMS of the loss gradient with respect to its pre-activations
  (``study/preact_grad/<i>``), the two quantities He et al. (2015) follow through depth;
- ``train_eval``: after every epoch, accuracy and loss on the whole training subset in eval mode
  (``study/train_eval_acc``, ``study/train_eval_loss``): training accuracy without dropout noise.

Like the diagnostics, every measurement leaves weights, buffers, modes and the RNG as it found them.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from lab.diagnostics import DiagnosticsCallback
from lab.diagnostics.probes import BlockNetwork


def _train_split(trainer: L.Trainer) -> tuple[Tensor, Tensor] | None:
    """The training split's tensors (the template's data module keeps each split whole)."""
    split = getattr(trainer.datamodule, "_splits", {}).get("train")
    return (split.images, split.labels) if split is not None else None


def _chunks(n: int, size: int = 1000) -> list[slice]:
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def unit_slopes(net: BlockNetwork, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    """Per hidden layer, each unit's largest ``|f'(z)|`` and largest pre-activation ``z`` over the
    images ``x``.

    ``f'`` comes from autograd on the activation alone (the sum trick gives the elementwise
    derivative of an elementwise activation; for maxout it is 1 on the winning piece), so every
    activation is judged alike.
    """
    best: list[Tensor] | None = None
    top: list[Tensor] | None = None
    for part in _chunks(len(x)):
        inputs = _act_inputs(net, x[part])
        slopes, highs = [], []
        for block, z in zip(net.blocks, inputs, strict=True):
            z = z.detach().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(block.act(z).sum(), z)
            slopes.append(grad.abs().transpose(0, 1).reshape(z.shape[1], -1).amax(dim=1))
            highs.append(z.detach().transpose(0, 1).reshape(z.shape[1], -1).amax(dim=1))
        best = (
            slopes
            if best is None
            else [torch.maximum(a, b) for a, b in zip(best, slopes, strict=True)]
        )
        top = (
            highs if top is None else [torch.maximum(a, b) for a, b in zip(top, highs, strict=True)]
        )
    return best or [], top or []


def _act_inputs(net: BlockNetwork, x: Tensor) -> list[Tensor]:
    """Each hidden block's activation input (pre-activation) on ``x``."""
    inputs: list[Tensor] = []
    hooks = [
        block.act.register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
        for block in net.blocks
    ]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return inputs


def unit_spread(net: BlockNetwork, x: Tensor) -> list[float]:
    """Per hidden layer: std across its units (per image, averaged) over the layer's overall std; 0:
    all alike."""
    outputs: list[Tensor] = []
    hooks = [
        block.act.register_forward_hook(lambda m, a, o: outputs.append(o)) for block in net.blocks
    ]
    try:
        with torch.no_grad():
            net(x[:1000])
    finally:
        for hook in hooks:
            hook.remove()
    out = []
    for o in outputs:
        flat = o.flatten(1).float()
        total = float(flat.std())
        out.append(float(flat.std(dim=1).mean()) / total if total > 0 else 0.0)
    return out


def init_signal(
    net: BlockNetwork, loss_fn: nn.Module, x: Tensor, y: Tensor
) -> tuple[list[float], list[float]]:
    """Per hidden layer: the activations' std and the RMS of d loss / d pre-activation, on ``x``."""
    pre: list[Tensor] = []
    post: list[Tensor] = []

    def keep(module: nn.Module, args: tuple[Tensor, ...]) -> None:
        args[0].retain_grad()
        pre.append(args[0])

    hooks = [block.act.register_forward_pre_hook(keep) for block in net.blocks]
    hooks += [
        block.act.register_forward_hook(lambda m, a, o: post.append(o)) for block in net.blocks
    ]
    try:
        with torch.enable_grad():
            loss_fn(net(x), y).backward()
    finally:
        for hook in hooks:
            hook.remove()
    stds = [float(a.detach().std()) for a in post]
    grads = [float(z.grad.pow(2).mean().sqrt()) if z.grad is not None else 0.0 for z in pre]
    return stds, grads


class _Kept:
    """Weights' gradients, modes, buffers and the RNG restored afterwards: measuring changes
    nothing."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def __enter__(self) -> None:
        self.modes = {m: m.training for m in self.net.modules()}
        self.buffers = {n: b.clone() for n, b in self.net.named_buffers()}
        self.grads = {
            n: None if p.grad is None else p.grad.clone() for n, p in self.net.named_parameters()
        }
        self.rng = torch.random.get_rng_state()
        self.net.eval()

    def __exit__(self, *exc: object) -> None:
        for module, mode in self.modes.items():
            module.training = mode
        with torch.no_grad():
            for name, b in self.net.named_buffers():
                b.copy_(self.buffers[name])
        for name, p in self.net.named_parameters():
            p.grad = self.grads[name]
        torch.random.set_rng_state(self.rng)


class StudyDiagnostics(DiagnosticsCallback):
    """The diagnostics, plus unit slopes over training images, the init signal by depth, eval-mode
    training accuracy (see the module docstring). Every extra is off unless asked for.

    Args:
        images: training images the unit measurements use (0: none).
        unit_every_n_steps: optimiser updates between unit measurements (0: at init and at the end
            only).
        slope_threshold: a unit is dead when its largest slope over the images is below this.
        init_grads: log the activation std and pre-activation gradient by depth at init.
        train_eval: log eval-mode accuracy and loss on the whole training subset after every epoch.
    """

    def __init__(
        self,
        *args: Any,
        images: int = 0,
        unit_every_n_steps: int = 0,
        slope_threshold: float = 1e-3,
        init_grads: bool = False,
        train_eval: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.images, self.unit_every_n_steps, self.slope_threshold = (
            images,
            unit_every_n_steps,
            slope_threshold,
        )
        self.init_grads, self.train_eval = init_grads, train_eval
        self._x: Tensor | None = None
        self._y: Tensor | None = None
        self._ever_dead: list[Tensor] = []
        self._last_unit_step = -1

    def _log(self, trainer: L.Trainer, metrics: dict[str, float]) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._measuring or (self.images <= 0 and not self.train_eval):
            return
        data = _train_split(trainer)
        if data is None:
            return
        self._x, self._y = (t.to(pl_module.device) for t in data)
        if self.images > 0:
            if self.init_grads:
                with _Kept(pl_module.net):
                    stds, grads = init_signal(pl_module.net, pl_module.loss_fn, *self._probe())
                metrics = {f"study/act_std/{i}": s for i, s in enumerate(stds)}
                metrics.update({f"study/preact_grad/{i}": g for i, g in enumerate(grads)})
                self._log(trainer, metrics)
            self._units(trainer, pl_module)

    def _probe(self) -> tuple[Tensor, Tensor]:
        assert self._x is not None and self._y is not None
        return self._x[: self.images], self._y[: self.images]

    def _units(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Dead, revived and spread per hidden layer, once per step."""
        if self._x is None or self.images <= 0 or trainer.global_step == self._last_unit_step:
            return
        self._last_unit_step = trainer.global_step
        net = pl_module.net
        with _Kept(net):
            x, _ = self._probe()
            (slopes, highs), spreads = unit_slopes(net, x), unit_spread(net, x)
        metrics: dict[str, float] = {}
        dead = [s < self.slope_threshold for s in slopes]
        if not self._ever_dead:
            self._ever_dead = [torch.zeros_like(d) for d in dead]
        for i, (d, high, spread) in enumerate(zip(dead, highs, spreads, strict=True)):
            metrics[f"study/negative/{i}"] = float((high <= 0).float().mean())
            revived = self._ever_dead[i] & ~d
            self._ever_dead[i] |= d
            metrics[f"study/dead/{i}"] = float(d.float().mean())
            metrics[f"study/revived/{i}"] = float(revived.float().mean())
            metrics[f"study/ever_dead/{i}"] = float(self._ever_dead[i].float().mean())
            metrics[f"study/unit_spread/{i}"] = spread
        self._log(trainer, metrics)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        every = self.unit_every_n_steps
        if self._measuring and every > 0 and trainer.global_step % every == 0:
            self._units(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not (self._measuring and self.train_eval) or self._x is None:
            return
        correct, loss = 0.0, 0.0
        with _Kept(pl_module.net), torch.no_grad():
            for part in _chunks(len(self._x)):
                logits = pl_module(self._x[part])
                loss += float(pl_module.loss_fn(logits, self._y[part])) * len(logits)  # type: ignore[index]
                correct += float((logits.argmax(1) == self._y[part]).sum())  # type: ignore[index]
        n = len(self._x)
        self._log(trainer, {"study/train_eval_acc": correct / n, "study/train_eval_loss": loss / n})

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._measuring:  # the end of training, while the run's logger is still open
            self._units(trainer, pl_module)
