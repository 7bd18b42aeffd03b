"""What both networks are made of: hidden blocks (weight layer, norm, activation, pool, dropout),
then an output.

One block type means one place that decides where batch norm sits (before the activation, the
usual choice, or after it): ``block.layer`` holds the weights, ``block.act`` produces the units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from torch import Tensor, nn

from mnist_lab.errors import ConfigError
from mnist_lab.models.components.activations import Activation

NormPosition = Literal["before", "after"]


class HiddenBlock(nn.Module):
    """``layer -> [norm] -> act -> [norm] -> [pool] -> [dropout]``, batch norm placed by
    ``norm_position``.

    ``layer(out_features, bias=...)`` builds the weight layer (a partial ``nn.Linear`` or
    ``nn.Conv2d``).
    """

    def __init__(
        self,
        layer: Callable[..., nn.Module],
        width: int,
        act: Activation,
        batch_norm: bool,
        norm_position: NormPosition,
        dropout: float,
        pool: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if norm_position not in ("before", "after"):
            raise ConfigError(
                f"batch_norm_position must be 'before' or 'after', got {norm_position!r}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {dropout}")
        # The layer emits a piece per input of the activation (maxout: k x width); batch norm
        # before the activation replaces its bias.
        self.layer = layer(width * act.pieces, bias=not (batch_norm and norm_position == "before"))
        self.norm_position = norm_position
        norm = nn.BatchNorm2d if isinstance(self.layer, nn.Conv2d) else nn.BatchNorm1d
        self.norm = (
            norm(width * act.pieces if norm_position == "before" else width)
            if batch_norm
            else nn.Identity()
        )
        self.act = act(width)
        self.pool = nn.Identity() if pool is None else pool
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        z = self.layer(x)
        if self.norm_position == "before":
            z = self.norm(z)
        a = self.act(z)
        if self.norm_position == "after":
            a = self.norm(a)
        return self.drop(self.pool(a))


class Network(nn.Module):
    """Hidden ``blocks``, then a linear ``output``: the structure the lab's diagnostics walk."""

    blocks: nn.ModuleList
    output: nn.Linear
    act: Activation
    init_args: dict[str, Any]

    def effective_args(self) -> dict[str, Any]:
        """The activation's and the init's arguments as used, defaults included (a run's params)."""
        return {"activation_args": dict(self.act.every), "weight_init_args": dict(self.init_args)}

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            # dense layers take flat input
            x = block(x.flatten(1) if isinstance(block.layer, nn.Linear) else x)
        return self.output(x.flatten(1))
