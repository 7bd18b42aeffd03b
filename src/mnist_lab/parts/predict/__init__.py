"""Classify digit images (PNG/JPG, any size) with a checkpoint or an MLflow run's model, each image
first put in the training data's form (greyscale, square, 28x28, light on dark, normalised)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn

from mnist_lab.data.datasets import get_dataset
from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD, normalise
from mnist_lab.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
WORKING_SIZE = 512  # a large photo is shrunk to this first, so it needs little memory


def find_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is an image, else the images in the folder ``path`` (sorted,
    recursive)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    found = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
    if not found:
        raise DataError(
            f"{path} is not a PNG or JPG file"
            if path.is_file()
            else f"no PNG or JPG files in {path}"
        )
    return found


def load_digit(path: str | Path, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> Tensor:
    """One image file as a ``(1, 28, 28)`` input, normalised with ``mean`` and ``std`` (MNIST's by
    default)."""
    try:
        with Image.open(path) as opened:
            # a JPEG decodes at a fraction of its size
            opened.draft("RGB", (WORKING_SIZE, WORKING_SIZE))
            opened.thumbnail((WORKING_SIZE, WORKING_SIZE))
            image = ImageOps.exif_transpose(opened)
            # as if printed on white paper
            if "A" in image.getbands() or "transparency" in image.info:
                image = Image.alpha_composite(
                    Image.new("RGBA", image.size, "white"), image.convert("RGBA")
                )
            grey = image.convert("L")
    except (OSError, SyntaxError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"cannot read image {path}: {err}") from None
    pixels = np.asarray(grey)
    background = int(
        np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]))
    )
    side = max(grey.size)
    square = Image.new("L", (side, side), background)
    square.paste(grey, ((side - grey.width) // 2, (side - grey.height) // 2))
    small = np.asarray(square.resize((28, 28), Image.Resampling.LANCZOS))
    if background > 127:  # a dark digit on light paper
        small = 255 - small
    return normalise(torch.tensor(small)[None], mean, std)[0]


def blank(image: Tensor) -> bool:
    """An input with (almost) one grey level: nothing to classify, whatever the network answers."""
    return float(image.max() - image.min()) < 0.1  # about 8 grey levels of MNIST's spread


@torch.no_grad()
def predict_images(model: nn.Module, paths: list[Path], batch_size: int = 256) -> Tensor:
    """Class probabilities ``(len(paths), num_classes)``, one row per image, in order."""
    spec = get_dataset(getattr(model, "dataset", "mnist"))
    inputs = torch.stack([load_digit(p, spec.mean, spec.std) for p in paths])
    for path, image in zip(paths, inputs, strict=True):
        if blank(image):
            print(
                f"warning: {path} is blank (one grey level): its prediction means nothing",
                file=sys.stderr,
            )
    return torch.cat([model(batch).softmax(dim=1) for batch in inputs.split(batch_size)])
