"""Batches cut by index from tensors: shuffled per epoch, sharded per process, resumable mid-epoch.

The order of epoch ``e`` depends only on ``(seed, e)``, and the loader's ``state_dict`` says how
many batches of the current epoch were consumed, so Lightning (which saves and restores the state
of loaders that have ``state_dict``/``load_state_dict``) resumes an interrupted epoch exactly where
it stopped. Under DDP each process takes every ``world_size``-th example of the same order, so no
``DistributedSampler`` is needed; training shards are cut to equal length so ranks stay in step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset


class TensorBatches(Dataset):
    """A dataset indexed by a list or tensor of indices (or a slice), returning a whole batch with one gather."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: list[int] | Tensor | slice) -> tuple[Tensor, Tensor]:
        if isinstance(index, slice):  # evaluation: contiguous views, no copy
            return self.images[index], self.labels[index]
        idx = torch.as_tensor(index, device=self.labels.device)
        return self.images[idx], self.labels[idx]

    def to(self, device: torch.device | str) -> TensorBatches:
        return TensorBatches(self.images.to(device), self.labels.to(device))


class TensorBatchLoader:
    """An iterable of ``(images, labels)`` batches over tensors that already hold the whole split.

    Args:
        images, labels: the split, indexed along the first dimension.
        batch_size: examples per batch (the last batch may be smaller).
        shuffle: a new permutation each epoch, from ``seed`` and the epoch number.
        seed: the shuffle seed; the same seed gives the same order in every run.
        epoch: a callable returning the current epoch (the trainer's); without it the loader counts.
        rank, world_size: this process's shard (DDP).
        equal_shards: cut every shard to the same length (training under DDP).
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
        self.images, self.labels = images, labels
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self._epoch_fn, self._own_epoch = epoch, 0
        self.rank, self.world_size, self.equal_shards = rank, world_size, equal_shards
        self._epoch = 0  # the epoch being iterated
        self._consumed = 0  # batches of it handed out
        self._resume_at: int | None = None  # set by load_state_dict

    def _shard_size(self) -> int:
        n = len(self.labels)
        if self.world_size == 1:
            return n
        if self.equal_shards:
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

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
        start = self._resume_at or 0
        if self._resume_at is not None and epoch != self._epoch:
            start = 0  # the saved position belongs to another epoch
        self._resume_at = None
        self._epoch, self._consumed = epoch, start
        if not self.shuffle and self.world_size == 1:  # evaluation: contiguous views, no gather, no copy
            for first in range(start * self.batch_size, len(self.labels), self.batch_size):
                self._consumed += 1
                yield self.images[first : first + self.batch_size], self.labels[first : first + self.batch_size]
            return
        order = self.order(epoch).to(self.labels.device)
        for first in range(start * self.batch_size, len(order), self.batch_size):
            idx = order[first : first + self.batch_size]
            self._consumed += 1
            yield self.images[idx], self.labels[idx]

    def state_dict(self) -> dict[str, Any]:
        """Where this epoch stands: Lightning stores it in every checkpoint."""
        return {"seed": self.seed, "epoch": self._epoch, "consumed": self._consumed}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the saved epoch after its consumed batches, in the saved order."""
        self.seed, self._epoch, self._resume_at = int(state["seed"]), int(state["epoch"]), int(state["consumed"])
