"""``make predict``: classify images with a checkpoint or a run's model.

``python -m mnist_lab.parts.predict <checkpoint | run id> <image | folder> [--out csv]``
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

from torch import Tensor

from mnist_lab.data.datasets import get_dataset
from mnist_lab.errors import ConfigError, command
from mnist_lab.parts.predict import find_images, predict_images
from mnist_lab.resume import load_classifier


def write_csv(out: Path, paths: list[Path], probs: Tensor, names: tuple[str, ...]) -> None:
    """``file, predicted, class, probability, p0 .. p<k>``, one row per image (``class``: the
    class's name)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["file", "predicted", "class", "probability", *(f"p{k}" for k in range(probs.shape[1]))]
        )
        for path, p, best in zip(paths, probs.tolist(), probs.argmax(dim=1).tolist(), strict=True):
            writer.writerow([path, best, names[best], f"{p[best]:.6f}", *(f"{v:.6f}" for v in p)])


def table(paths: list[Path], probs: Tensor, names: tuple[str, ...]) -> str:
    width, name_width = (
        max(len("file"), *(len(str(p)) for p in paths)),
        max(len("class"), *map(len, names)),
    )
    lines = [f"{'file':<{width}}  predicted  {'class':<{name_width}}  probability"]
    for path, p, best in zip(paths, probs.tolist(), probs.argmax(dim=1).tolist(), strict=True):
        lines.append(
            f"{str(path):<{width}}  {best:>9}  {names[best]:<{name_width}}  {p[best]:>11.4f}"
        )
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make predict", description="Classify digit images.")
    parser.add_argument(
        "model", help="a checkpoint file (.ckpt), an MLflow run id or models:/<name>@<alias>"
    )
    parser.add_argument("input", type=Path, help="a PNG/JPG file of any size, or a folder of them")
    parser.add_argument(
        "--out", type=Path, default="outputs/image_predictions.csv", help="default: %(default)s"
    )
    args = parser.parse_args(argv)
    # a run id downloads its checkpoint
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    out = args.out / "image_predictions.csv" if args.out.is_dir() else args.out
    if out.suffix.lower() != ".csv":
        raise ConfigError(f"OUT={args.out} is neither a .csv file nor a folder to write one into")
    paths = find_images(args.input)
    model = load_classifier(args.model)
    probs = predict_images(model, paths)
    names = get_dataset(model.dataset).class_names  # of the data the model learned
    print(table(paths, probs, names))
    write_csv(out, paths, probs, names)
    print(f"wrote {len(paths)} predictions to {out}")


if __name__ == "__main__":
    raise SystemExit(main())
