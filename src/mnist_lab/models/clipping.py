"""Gradient clipping by norm as Lightning does it, minus the no-op rescale on the CPU (README, "Performance")."""

from __future__ import annotations

import lightning as L
import torch


def clip_gradients(
    module: L.LightningModule,
    optimizer: torch.optim.Optimizer,
    gradient_clip_val: float | None = None,
    gradient_clip_algorithm: str | None = None,
) -> None:
    """Clip by norm as Lightning does, but skip the rescale by 1.0 when the norm is under the limit.

    On the CPU reading the norm costs nothing, and the rescale of every gradient is most of
    ``clip_grad_norm_``'s time; on a GPU reading it would synchronise, so Lightning's path runs.
    """
    if not gradient_clip_val or gradient_clip_algorithm not in (None, "norm"):
        return module.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not params or params[0].device.type != "cpu":
        return module.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
    total = torch.nn.utils.get_total_norm([p.grad for p in params])
    if not total <= gradient_clip_val:  # also rescales (to nan) when the norm is not finite, like torch
        torch.nn.utils.clip_grads_with_norm_(params, gradient_clip_val, total)
    return None
