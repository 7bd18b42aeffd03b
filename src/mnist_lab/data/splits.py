"""How the training file is split: validation images first, then the (optionally fewer) training images.

One ``split_seed`` permutation decides both, so the validation set never depends on ``train_size``,
a training subset never depends on the run's seed, and a smaller subset lies inside a larger one
(a learning curve over ``train_size`` adds images, it does not swap them).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mnist_lab.errors import ConfigError


def check_split_sizes(n_images: int, val_size: int, train_size: int | None) -> None:
    """The validation split must leave training images, and ``train_size`` must fit in what it leaves."""
    if val_size >= n_images:
        raise ConfigError(f"val_size={val_size} leaves no training images of {n_images}")
    if train_size is not None and train_size > n_images - val_size:
        raise ConfigError(
            f"train_size={train_size} is more than the {n_images - val_size} training images "
            f"left of {n_images} after val_size={val_size}"
        )


def split_indices(n_images: int, val_size: int, train_size: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """``(validation, training)`` indices into the training file; ``train_size=None`` keeps them all."""
    check_split_sizes(n_images, val_size, train_size)
    order = torch.randperm(n_images, generator=torch.Generator().manual_seed(seed))
    rest = order[val_size:]
    return order[:val_size], rest if train_size is None else rest[:train_size]
