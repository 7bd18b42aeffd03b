"""Digit images in, class probabilities out: the same preprocessing as training, any model source.

``load_digit`` turns a PNG/JPG of any size into one MNIST-like input: greyscale, padded to a square
with its own background, resized to 28x28, inverted when the background is light (MNIST digits are
light on dark), then normalised with the training mean and std. ``load_classifier`` accepts a
checkpoint file or an MLflow run id.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor, nn

from mnist_lab.data.datasets import get_dataset
from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD, normalise
from mnist_lab.errors import ConfigError, DataError
from mnist_lab.models.mnist_module import MNISTClassifier
from mnist_lab.tracking.model_uri import MODEL_NAME  # the name MLflowRunCallback logs the network under

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
SIDE = 28
_RUN_ID = re.compile(r"^(runs:/)?([0-9a-f]{32})/?$")


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


def _checkpoint_artifact(client, run_id: str, tmp: str) -> str | None:
    """The run's best checkpoint artifact, if it logged any.

    ``MLFlowLogger(log_model=True)`` logs each checkpoint in a folder (``<stem>/<stem>.ckpt``; older
    Lightning: ``model/checkpoints/<stem>/``) beside an ``aliases.txt`` that names the best one.
    """
    from mlflow.exceptions import MlflowException

    checkpoints: list[str] = []
    folders: list[str | None] = [None]
    while folders:
        for item in client.list_artifacts(run_id, folders.pop()):
            if item.is_dir and Path(item.path).name != MODEL_NAME:
                folders.append(item.path)
            elif item.path.endswith(".ckpt"):
                checkpoints.append(item.path)

    def is_best(path: str) -> bool:
        try:
            aliases = client.download_artifacts(run_id, f"{Path(path).parent.as_posix()}/aliases.txt", tmp)
        except (MlflowException, OSError):  # no aliases.txt: not logged by MLFlowLogger
            return False
        return "best" in Path(aliases).read_text()

    checkpoints.sort()
    best = [path for path in checkpoints if is_best(path)]
    return (best or checkpoints or [None])[-1]


def _from_run(run_id: str) -> nn.Module:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mnist_lab.tracking.logger import resolve_tracking_uri

    uri = resolve_tracking_uri()
    client = MlflowClient(uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"{run_id} is neither a checkpoint file nor a run in the MLflow store {uri}") from None
    with tempfile.TemporaryDirectory() as tmp:
        artifact = _checkpoint_artifact(client, run_id, tmp)
        if artifact is not None:
            return _from_checkpoint(Path(client.download_artifacts(run_id, artifact, tmp)))
    mlflow.set_tracking_uri(uri)
    try:  # logged in eval mode, and (MLflow 3's pt2 format) a graph that refuses .train()/.eval()
        model = mlflow.pytorch.load_model(f"runs:/{run_id}/{MODEL_NAME}", map_location="cpu")
        metadata = mlflow.models.get_model_info(f"runs:/{run_id}/{MODEL_NAME}").metadata or {}
        model.dataset = metadata.get("dataset") or "mnist"
        return model
    except (MlflowException, OSError) as err:
        raise ConfigError(f"run {run_id} has neither a checkpoint nor a logged model '{MODEL_NAME}': {err}") from None


def _from_checkpoint(path: Path) -> nn.Module:
    # The hyperparameters hold the optimiser class, which torch's weights-only unpickler refuses:
    # a checkpoint is code, so load only your own (or ones you trust), as with any pickle.
    model = MNISTClassifier.load_from_checkpoint(path, map_location="cpu", weights_only=False).eval()
    data = torch.load(path, map_location="cpu", weights_only=False).get("datamodule_hyper_parameters") or {}
    model.dataset = data.get("dataset") or "mnist"  # whose statistics the images are normalised with
    return model


def load_classifier(ckpt_or_run_id: str | Path) -> nn.Module:
    """A model from images ``(N, 1, 28, 28)`` to logits, in eval mode, on the CPU.

    ``ckpt_or_run_id``: a Lightning checkpoint file, or an MLflow run id (also ``runs:/<id>``) in
    ``$MLFLOW_TRACKING_URI`` (default: the local store): the run's best checkpoint if it logged one,
    else its logged model ``runs:/<id>/classifier``.
    """
    path = Path(ckpt_or_run_id)
    if path.is_file():
        return _from_checkpoint(path)
    if match := _RUN_ID.match(str(ckpt_or_run_id)):
        return _from_run(match.group(2))
    raise ConfigError(f"{ckpt_or_run_id} is neither a checkpoint file nor an MLflow run id")


@torch.no_grad()
def predict_images(model: nn.Module, paths: Sequence[Path], batch_size: int = 256) -> Tensor:
    """Class probabilities ``(len(paths), num_classes)``, one row per image, in order."""
    spec = get_dataset(getattr(model, "dataset", "mnist"))
    rows = []
    for start in range(0, len(paths), batch_size):
        batch = torch.stack([load_digit(p, spec.mean, spec.std) for p in paths[start : start + batch_size]])
        rows.append(model(batch).softmax(dim=1))
    return torch.cat(rows)
