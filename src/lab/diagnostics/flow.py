"""Gradient flow measured on the training step itself: the gradient w.r.t. each layer's
pre-activations, and the cosine between a layer's consecutive weight updates.

Both ride on steps the optimiser takes anyway (no extra forward or backward pass), so they cost a
hook and a copy of the weights on the steps they measure. Depth index ``i`` as in
:mod:`lab.diagnostics.probes`: 0 is the first hidden layer, the last is the output layer.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from lab.diagnostics.probes import BlockNetwork, weight_layers


class PreactGrads:
    """While attached, records the gradient of the loss w.r.t. every weight layer's output ``z = Wx
    + b`` (before any batch norm and the activation) in the next backward pass: the textbook's
    ``delta`` of each layer.

    ``norms()`` gives, per layer, the mean over the batch of each example's ``||d loss_n / d
    z_n||``: the loss is a batch mean, so the gradient's rows are scaled back by the batch size.
    """

    def __init__(self) -> None:
        self.handles: list[RemovableHandle] = []
        self.grads: dict[int, Tensor] = {}

    def attach(self, net: BlockNetwork) -> None:
        self.detach()
        for i, layer in enumerate(weight_layers(net)):
            self.handles.append(layer.register_forward_hook(self._hook(i)))

    def _hook(self, i: int):  # noqa: ANN202 - a forward hook
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            if output.requires_grad:
                output.register_hook(lambda grad: self.grads.__setitem__(i, grad.detach()))

        return hook

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles, self.grads = [], {}

    @property
    def attached(self) -> bool:
        return bool(self.handles)

    def norms(self) -> list[float]:
        """Per layer, input side first; empty when the backward pass reached no layer."""
        out = []
        for i in sorted(self.grads):
            g = self.grads[i].flatten(1)
            out.append(float(g.norm(dim=1).mean() * g.shape[0]))
        return out


def row_cosine(a: Tensor, b: Tensor) -> float:
    """Per unit (a row: its incoming weights), the cosine between ``a`` and ``b``, averaged over the
    units that moved in both; NaN when none did."""
    a, b = a.flatten(1), b.flatten(1)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    moved = (na > 0) & (nb > 0)
    if not bool(moved.any()):
        return float("nan")
    return float(((a * b).sum(dim=1)[moved] / (na * nb)[moved]).mean())


class UpdateCosine:
    """The cosine between consecutive weight updates of each layer, per unit then averaged
    (:func:`row_cosine`).

    Call ``before(step, net)`` ahead of the optimiser step and ``after(step, net)`` once it is
    taken; every ``every`` steps the update of step ``s`` is kept and ``after(s + 1)`` returns its
    cosine with the next one: near -1 when updates go back and forth (zig-zag), near +1 when they
    keep one direction.
    """

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.snapshot: list[Tensor] | None = None
        self.previous: tuple[int, list[Tensor]] | None = None

    def before(self, step: int, net: BlockNetwork) -> None:
        wanted = step % self.every == 0 or (
            self.previous is not None and self.previous[0] == step - 1
        )
        self.snapshot = (
            [layer.weight.detach().clone() for layer in weight_layers(net)] if wanted else None
        )

    def after(self, step: int, net: BlockNetwork) -> list[float] | None:
        if self.snapshot is None:
            return None
        update = [
            layer.weight.detach() - old
            for layer, old in zip(weight_layers(net), self.snapshot, strict=True)
        ]
        self.snapshot = None
        cosines = None
        if self.previous is not None and self.previous[0] == step - 1:
            cosines = [row_cosine(a, b) for a, b in zip(self.previous[1], update, strict=True)]
        self.previous = (step, update) if step % self.every == 0 else None
        return cosines


def relative_grads(net: BlockNetwork) -> list[float]:
    """Per weight layer, ``||grad W|| / ||W||``: the share of its size one unit-rate SGD step moves
    it. A saturated layer's weights are large, so a gradient that is not small in itself may still
    barely move them."""
    out = []
    for layer in weight_layers(net):
        grad, norm = layer.weight.grad, float(layer.weight.detach().norm())
        out.append(float(grad.norm()) / norm if grad is not None and norm > 0 else float("nan"))
    return out
