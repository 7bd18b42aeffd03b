"""Batched random affine augmentation: one ``affine_grid``/``grid_sample`` call per batch.

Runs on whole normalised batches on the training device, never per sample through PIL, so it
keeps the tensor-resident data path fast.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def random_affine(
    x: Tensor,
    degrees: float = 10.0,
    translate: float = 0.1,
    scale: tuple[float, float] = (0.9, 1.1),
    background: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Rotate by U(+-degrees), shift by U(+-translate) of the size, zoom by U(scale), per image.

    ``background`` is the value of an empty pixel (after normalisation), used for the border.
    """
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> Tensor:
        return torch.rand(n, generator=generator, device=x.device, dtype=x.dtype) * (hi - lo) + lo

    angle = uniform(-degrees, degrees) * (math.pi / 180)
    zoom = uniform(*scale)
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [
            torch.stack([cos, -sin, uniform(-translate, translate) * 2], dim=1),
            torch.stack([sin, cos, uniform(-translate, translate) * 2], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    moved = F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros")
    return moved + background
