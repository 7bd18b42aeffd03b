"""Batches cut by index from tensors that hold a whole split: shuffled per epoch, sharded per
process, resumable mid-epoch.

Epoch ``e``'s order depends only on ``(seed, e)``, and ``state_dict`` counts the batches of the
epoch handed out, so Lightning (which saves and restores loaders that have ``state_dict``) resumes
an interrupted epoch exactly. Under DDP each process takes every ``world_size``-th example of the
same order, so no ``DistributedSampler`` is needed; training shards are cut to one length so ranks
stay in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class Split:
    """One split's images and labels, indexed along the first dimension."""

    images: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)


class TensorBatchLoader:
    """``(images, labels)`` batches of ``batch_size`` (the last may be smaller).

    ``shuffle`` draws a permutation per epoch from ``seed`` and the epoch number, which ``epoch()``
    gives (the trainer's) or the loader counts itself. ``rank``/``world_size`` choose this process's
    shard, and ``equal_shards`` cuts every shard to one length (training under DDP).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        epoch: Callable[[], int] | None = None,
        rank: int = 0,
        world_size: int = 1,
        equal_shards: bool = False,
    ) -> None:
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.shuffle, self.seed, self._epoch_fn = shuffle, seed, epoch
        self.rank, self.world_size, self.equal_shards = rank, world_size, equal_shards
        self._epoch = self._consumed = 0  # the epoch being iterated, and its batches handed out
        self._own_epoch = 0  # the next epoch, without ``epoch``
        self._resume_at: int | None = None  # set by load_state_dict

    def _shard_size(self) -> int:
        n = len(self.labels)
        return (
            n // self.world_size if self.equal_shards else len(range(self.rank, n, self.world_size))
        )

    def __len__(self) -> int:
        return -(-self._shard_size() // self.batch_size)

    def order(self, epoch: int) -> Tensor:
        """This process's example indices for ``epoch``."""
        n = len(self.labels)
        if self.shuffle:
            generator = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        return order[self.rank :: self.world_size][: self._shard_size()]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        if self._epoch_fn is not None:
            epoch = self._epoch_fn()
        else:
            epoch, self._own_epoch = self._own_epoch, self._own_epoch + 1
        # a position saved in another epoch is void
        resume = self._resume_at is not None and epoch == self._epoch
        start = self._resume_at if resume else 0
        self._epoch, self._consumed, self._resume_at = epoch, start, None
        # evaluation: contiguous slices, no gather, no copy
        views = not self.shuffle and self.world_size == 1
        order = None if views else self.order(epoch).to(self.labels.device)
        for first in range(start * self.batch_size, self._shard_size(), self.batch_size):
            idx = (
                slice(first, first + self.batch_size)
                if order is None
                else order[first : first + self.batch_size]
            )
            self._consumed += 1
            yield self.images[idx], self.labels[idx]

    def state_dict(self) -> dict[str, Any]:
        """Where this epoch stands: Lightning stores it in every checkpoint."""
        return {"seed": self.seed, "epoch": self._epoch, "consumed": self._consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved epoch after its consumed batches, in the saved order."""
        self.seed, self._epoch, self._resume_at = (
            int(state["seed"]),
            int(state["epoch"]),
            int(state["consumed"]),
        )
