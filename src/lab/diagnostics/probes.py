"""Measurements on a network built from ``HiddenBlock``s (``net.blocks`` then ``net.output``).

Depth index ``i`` runs from the first hidden block (0) to the output layer (``len(blocks)``).
Each function is pure measurement: it leaves weights, running statistics and the global RNG
as it found them, so calling it during training does not change what training does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class BlockNetwork(Protocol):
    """A network the diagnostics understand: hidden ``blocks`` (input side first, each with
    ``layer``, the weights, and ``act``, the units), then the ``output`` layer. The template's MLP
    and CNN are ones."""

    blocks: Sequence[nn.Module]
    output: nn.Module


def relative_slope(act: nn.Module) -> Callable[[Tensor], Tensor] | None:
    """f'(x) / max f' from the output y, for the saturating activations (sigmoid, tanh)."""
    if isinstance(act, nn.Sigmoid):
        return lambda y: y * (1 - y) / 0.25
    if isinstance(act, nn.Tanh):
        return lambda y: 1 - y * y
    return None


def weight_layers(net: BlockNetwork) -> list[nn.Module]:
    """The weight layer of every hidden block, then the output layer."""
    return [block.layer for block in net.blocks] + [net.output]


def grad_norms(net: BlockNetwork) -> list[float]:
    """L2 norm of each layer's weight gradient, input side first (0.0 where there is none)."""
    return [
        float(layer.weight.grad.norm()) if layer.weight.grad is not None else 0.0
        for layer in weight_layers(net)
    ]


def sign_agreement(grad: Tensor) -> Tensor:
    """Per output unit (a row; a conv filter's in_channels x kh x kw), the share of its nonzero
    incoming gradients with the majority sign, ``max(#pos, #neg) / #nonzero``, averaged over units.

    ``(1 + |sum of signs| / #nonzero) / 2`` is the same number from one ``sign()`` pass. For one
    example the row is ``delta_j * inputs``, so inputs of one sign (sigmoid outputs) give exactly 1:
    every weight into a unit must move the same way, the zig-zag the textbook blames on
    non-zero-centred activations. NaN when no unit has a nonzero gradient (a step activation).
    """
    signs = grad.detach().flatten(1).sign()
    nonzero = signs.abs().sum(dim=1)
    share = (1 + signs.sum(dim=1).abs() / nonzero) / 2  # NaN for all-zero rows, left out just below
    return share.nanmean()


def grad_sign_agreement(net: BlockNetwork) -> list[float]:
    """:func:`sign_agreement` of each layer's weight gradient, input side first (NaN where there is
    none)."""
    grads = [layer.weight.grad for layer in weight_layers(net)]
    shares = [sign_agreement(g) if g is not None else None for g in grads]
    present = [s for s in shares if s is not None]
    # one device sync for every layer
    values = iter(torch.stack(present).tolist() if present else [])
    return [next(values) if s is not None else float("nan") for s in shares]


@dataclass
class LayerStats:
    """What one hidden layer's outputs look like on the probe batch."""

    mean: float
    std: float
    dead_frac: float  # units constant over every example of the batch
    distinct_units: int  # units whose output columns differ from each other
    saturation: float | None  # fraction of outputs where f' < 1% of max f' (sigmoid/tanh family)
    values: Tensor  # a sample of outputs, for histograms


def _per_unit(output: Tensor) -> Tensor:
    """(N, C) or (N, C, H, W) -> (C, N*H*W): one row per unit (a channel for conv layers)."""
    return output.transpose(0, 1).reshape(output.shape[1], -1)


def _layer_stats(act: nn.Module, output: Tensor, tolerance: float, sample: int) -> LayerStats:
    units = _per_unit(output.float())
    spread = units.max(dim=1).values - units.min(dim=1).values
    distinct = torch.unique(torch.round(units / tolerance), dim=0).shape[0]
    slope = relative_slope(act)
    flat = output.detach().flatten()
    return LayerStats(
        mean=float(flat.mean()),
        std=float(flat.std()) if flat.numel() > 1 else 0.0,
        dead_frac=float((spread <= tolerance).float().mean()),
        distinct_units=int(distinct),
        saturation=float((slope(flat) < 0.01).float().mean()) if slope is not None else None,
        values=flat[:: max(1, flat.numel() // sample)].cpu(),  # an even stride: no RNG draw
    )


@contextmanager
def _preserved(net: nn.Module):
    """Restore train/eval mode, buffers (BatchNorm running stats) and the RNG afterwards."""
    modes = {m: m.training for m in net.modules()}
    buffers = {name: b.clone() for name, b in net.named_buffers()}
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        try:
            yield
        finally:
            for module, mode in modes.items():
                module.training = mode
            for name, b in net.named_buffers():
                b.copy_(buffers[name])


def activation_stats(
    net: BlockNetwork, x: Tensor, tolerance: float = 1e-6, sample: int = 4000
) -> list[LayerStats]:
    """Per hidden layer, in eval mode (the network as it will be used) on a fixed batch."""
    outputs: list[Tensor] = []
    hooks = [
        block.act.register_forward_hook(lambda m, i, o: outputs.append(o)) for block in net.blocks
    ]
    try:
        with _preserved(net):
            net.eval()
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    return [
        _layer_stats(block.act, out, tolerance, sample)
        for block, out in zip(net.blocks, outputs, strict=True)
    ]


def mode_gap(net: nn.Module, x: Tensor, y: Tensor) -> tuple[float, float]:
    """Accuracy on the same batch in train mode (dropout on, batch statistics) and in eval mode."""
    with _preserved(net):
        net.train()
        train_acc = float((net(x).argmax(1) == y).float().mean())
        net.eval()
        eval_acc = float((net(x).argmax(1) == y).float().mean())
    return train_acc, eval_acc
