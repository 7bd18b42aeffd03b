"""The loss registry: ``(loss, output)`` -> a function of ``(logits, labels)`` returning the mean loss.

The network always emits logits and predictions are always their argmax; ``output`` only says
which squashing the *loss* sees (softmax over the classes, or a sigmoid per class against a one-hot
target). Cross-entropy is computed from the logits (``log_softmax``/``logsigmoid`` inside torch's
functions), never as ``log(sigmoid(z))``, which underflows to ``-inf`` once a unit saturates; the
squared error is taken on the squashed outputs, as the textbooks that compare the two do, so its
gradient carries the squashing's derivative (near zero on a saturated, wrong unit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from mnist_lab.errors import ConfigError

LossName = Literal["cross_entropy", "mse"]
OutputName = Literal["softmax", "sigmoid"]
LossFn = Callable[[Tensor, Tensor], Tensor]


def _one_hot(logits: Tensor, labels: Tensor) -> Tensor:
    return F.one_hot(labels, logits.shape[1]).to(logits.dtype)


def _bce_sigmoid(logits: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of each class's sigmoid against the one-hot target, averaged over N x C."""
    return F.binary_cross_entropy_with_logits(logits, _one_hot(logits, labels))


def _mse_softmax(logits: Tensor, labels: Tensor) -> Tensor:
    """Squared error of the softmax probabilities against the one-hot target, averaged over N x C."""
    return F.mse_loss(logits.softmax(dim=1), _one_hot(logits, labels))


def _mse_sigmoid(logits: Tensor, labels: Tensor) -> Tensor:
    """Squared error of the per-class sigmoids against the one-hot target, averaged over N x C."""
    return F.mse_loss(torch.sigmoid(logits), _one_hot(logits, labels))


# The default is torch's own function itself, so the default training step does no extra work.
LOSSES: dict[tuple[str, str], LossFn] = {
    ("cross_entropy", "softmax"): F.cross_entropy,
    ("cross_entropy", "sigmoid"): _bce_sigmoid,
    ("mse", "softmax"): _mse_softmax,
    ("mse", "sigmoid"): _mse_sigmoid,
}


def get_loss(loss: str, output: str) -> LossFn:
    """The registry entry for ``(loss, output)``; an unknown name lists the valid ones."""
    losses = sorted({name for name, _ in LOSSES})
    outputs = sorted({name for _, name in LOSSES})
    if loss not in losses:
        raise ConfigError(f"unknown loss {loss!r}; choose one of: {', '.join(losses)}")
    if output not in outputs:
        raise ConfigError(f"unknown output {output!r}; choose one of: {', '.join(outputs)}")
    return LOSSES[(loss, output)]
