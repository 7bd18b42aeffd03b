"""The losses the textbook compares: cross-entropy or squared error, on softmax or per-class sigmoid
outputs.

The network always emits logits and predictions are always their argmax; ``output`` only says which
squashing the *loss* sees. Cross-entropy is computed from the logits (``log_softmax``/``logsigmoid``
inside torch's functions), never as ``log(sigmoid(z))``, which underflows to ``-inf`` once a unit
saturates; the squared error is taken on the squashed outputs, as the textbooks that compare the two
do, so its gradient carries the squashing's derivative (near zero on a saturated, wrong unit).
Use it as ``--model.loss=lab.losses.TextbookLoss --model.loss.init_args.loss=mse``
``--model.loss.init_args.output=sigmoid``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mnist_lab.errors import ConfigError

LOSSES = ("cross_entropy", "mse")
OUTPUTS = ("softmax", "sigmoid")


class TextbookLoss(nn.Module):
    """``loss`` of the ``output`` squashing against the labels (one-hot for all but softmax +
    cross-entropy)."""

    def __init__(
        self,
        loss: Literal["cross_entropy", "mse"] = "cross_entropy",
        output: Literal["softmax", "sigmoid"] = "softmax",
    ) -> None:
        super().__init__()
        for what, value, valid in (("loss", loss, LOSSES), ("output", output, OUTPUTS)):
            if value not in valid:  # else an unknown name would silently train with another loss
                raise ConfigError(f"unknown {what} {value!r}; choose one of: {', '.join(valid)}")
        self.loss, self.output = loss, output

    def extra_repr(self) -> str:
        return f"loss={self.loss}, output={self.output}"

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        if self.loss == "cross_entropy" and self.output == "softmax":
            return F.cross_entropy(logits, labels)
        target = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
        if self.loss == "cross_entropy":
            return F.binary_cross_entropy_with_logits(logits, target)
        squashed = logits.softmax(dim=1) if self.output == "softmax" else torch.sigmoid(logits)
        return F.mse_loss(squashed, target)
