"""LR schedules that learn the run's length from the module, so EPOCHS=3 and EPOCHS=30 both decay
fully.

A scheduler with a ``set_horizon(n)`` method is told, once, how many scheduler steps the run will
take (``Classifier.configure_optimizers`` calls it); torch's own schedulers work unchanged
when their length is given in the config.
"""

from __future__ import annotations

import math
import sys

from lightning.pytorch.utilities.rank_zero import rank_zero_only
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from mnist_lab.errors import ConfigError


class CosineDecay(LRScheduler):
    """Linear warm-up over ``warmup_fraction`` of the run, then cosine decay to
    ``min_lr_ratio * lr``."""

    def __init__(
        self, optimizer: Optimizer, warmup_fraction: float = 0.0, min_lr_ratio: float = 0.0
    ) -> None:
        if not 0.0 <= warmup_fraction < 1.0 or not 0.0 <= min_lr_ratio <= 1.0:
            raise ConfigError("warmup_fraction must be in [0, 1) and min_lr_ratio in [0, 1]")
        self.warmup_fraction = warmup_fraction
        self.min_lr_ratio = min_lr_ratio
        self.horizon = 1
        super().__init__(optimizer)

    def set_horizon(self, steps: int) -> None:
        """The number of ``step()`` calls the whole run makes; the current LR follows the new plan.

        Without the update the first optimiser step would run at the LR planned for a 1-step run
        (the full LR, no warm-up), since ``__init__`` sets it before the horizon is known.
        """
        self.horizon = max(1, int(steps))
        self._apply(self.get_lr())

    def _apply(self, lrs: list[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The learning rates in use (also after a re-plan, between two steps)."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume the schedule; if the run's length changed (more epochs), re-plan it to fit.

        Without this, a finished run extended from its checkpoint would restore the old horizon and
        train at ``min_lr_ratio * lr`` (0 by default) for every added step.
        """
        planned = self.horizon
        super().load_state_dict(state_dict)
        if planned != self.horizon and planned > 1:
            old, self.horizon = self.horizon, planned
            self._apply(self.get_lr())
            if rank_zero_only.rank == 0:  # a note, not a warning: nothing is wrong
                print(
                    f"CosineDecay re-planned for the new run length: {old} -> {planned} steps; "
                    f"at step {self.last_epoch} the learning rate is now "
                    f"{self.get_last_lr()[0]:.3g}, decaying to the new end",
                    file=sys.stderr,
                )

    def factor(self, step: int) -> float:
        """Multiplier of the base LR after ``step`` scheduler steps."""
        warmup = int(self.warmup_fraction * self.horizon)
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, self.horizon - warmup))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    def get_lr(self) -> list[float]:
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]
