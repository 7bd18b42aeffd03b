"""What to tell a user whose loss became NaN or infinite: where, at which learning rate, what to try."""

from __future__ import annotations

import lightning as L
from torch import Tensor


def divergence_message(trainer: L.Trainer, loss: Tensor) -> str:
    """One paragraph: the step and epoch, the loss, the learning rate (and its base), the remedies, the
    last good checkpoint (the weights were not touched by the diverged step)."""
    group = trainer.optimizers[0].param_groups[0] if trainer.optimizers else {}
    lr, base = group.get("lr", float("nan")), group.get("initial_lr", group.get("lr", float("nan")))
    checkpoint = trainer.checkpoint_callback
    kept = getattr(checkpoint, "last_model_path", "") or getattr(checkpoint, "best_model_path", "")
    where = f"the last good checkpoint is {kept}" if kept else "no checkpoint was saved before it"
    return (
        f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): the loss is "
        f"{float(loss)} at learning rate {lr:.3g} (base {base:.3g}). Try a smaller LR (e.g. LR={base / 10:.3g}), "
        f"gradient clipping (--trainer.gradient_clip_val=1.0), batch norm (BN=true) or a smaller init; {where}"
    )
