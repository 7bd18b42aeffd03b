"""Batched random affine augmentation: one ``affine_grid``/``grid_sample`` per batch on its
device, never per sample through PIL, so the tensor-resident data path stays fast."""

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
) -> Tensor:
    """Rotate by U(+-degrees), shift by U(+-translate) of the size and zoom by U(scale), each
    image its own; ``background``, an empty pixel's (normalised) value, fills the border."""

    def uniform(lo: float, hi: float) -> Tensor:
        return torch.rand(x.shape[0], device=x.device, dtype=x.dtype) * (hi - lo) + lo

    angle, zoom = uniform(-degrees, degrees) * (math.pi / 180), uniform(*scale)
    # affine_grid coordinates run from -1 to 1: the image spans 2
    shift_x, shift_y = uniform(-translate, translate) * 2, uniform(-translate, translate) * 2
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([cos, -sin, shift_x, sin, cos, shift_y], dim=1).view(-1, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return (
        F.grid_sample(x - background, grid, align_corners=False, padding_mode="zeros") + background
    )
