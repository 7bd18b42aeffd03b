"""Digit images in, class probabilities out: the same preprocessing as training, any model source.

``load_digit`` turns a PNG/JPG of any size into one MNIST-like input: greyscale, padded to a square
with its own background, resized to 28x28, inverted when the background is light (MNIST digits are
light on dark), then normalised with the training mean and std. ``load_classifier`` accepts a
checkpoint file or an MLflow run id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn

from mnist_lab.checkpoints import resolve
from mnist_lab.data.datasets import get_dataset
from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD, normalise
from mnist_lab.errors import DataError
from mnist_lab.models.classifier import Classifier
from mnist_lab.tracking.logger import resolve_tracking_uri

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SIDE = 28


def find_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is an image, else the images in the folder ``path`` (sorted, recursive)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path} is not a PNG or JPG file")
        return [path]
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"no PNG or JPG files in {path}")
        return found
    raise DataError(f"{path} does not exist")


def _greyscale(image: Image.Image) -> Image.Image:
    """8-bit greyscale; transparent pixels become white paper, as if printed."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return image.convert("L")


def load_digit(path: str | Path, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> Tensor:
    """One image file as a ``(1, 28, 28)`` tensor, light on dark like MNIST, normalised with the
    training data's ``mean`` and ``std`` (MNIST's by default)."""
    try:
        with Image.open(path) as opened:
            grey = _greyscale(ImageOps.exif_transpose(opened))
    except (OSError, SyntaxError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"cannot read image {path}: {err}") from None
    pixels = np.asarray(grey)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = int(np.median(border))
    side = max(grey.size)
    square = Image.new("L", (side, side), background)  # pad, so the digit keeps its aspect ratio
    square.paste(grey, ((side - grey.width) // 2, (side - grey.height) // 2))
    small = np.asarray(square.resize((SIDE, SIDE), Image.Resampling.LANCZOS), dtype=np.uint8)
    if background > 127:  # dark digit on light paper: invert to MNIST's light-on-dark
        small = 255 - small
    return normalise(torch.from_numpy(small.copy()).unsqueeze(0), mean, std)[0]


def load_classifier(ckpt_or_run_id: str | Path) -> nn.Module:
    """A model from images to logits, in eval mode, on the CPU, from a checkpoint file or an MLflow
    run id (its best checkpoint: :func:`mnist_lab.checkpoints.resolve`).

    The checkpoint's hyperparameters hold the optimiser's class, which torch's weights-only unpickler
    refuses: a checkpoint is code, so load only your own (or ones you trust), as with any pickle.
    """
    path = resolve(str(ckpt_or_run_id), Path("."), resolve_tracking_uri(), which="best")
    model = Classifier.load_from_checkpoint(path, map_location="cpu", weights_only=False).eval()
    data = torch.load(path, map_location="cpu", weights_only=False).get("datamodule_hyper_parameters") or {}
    model.dataset = data.get("dataset") or "mnist"  # whose statistics the images are normalised with
    return model


@torch.no_grad()
def predict_images(model: nn.Module, paths: Sequence[Path], batch_size: int = 256) -> Tensor:
    """Class probabilities ``(len(paths), num_classes)``, one row per image, in order."""
    spec = get_dataset(getattr(model, "dataset", "mnist"))
    rows = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([load_digit(p, spec.mean, spec.std) for p in paths[start : start + batch_size]])
        rows.append(model(batch).softmax(dim=1))
    return torch.cat(rows)
