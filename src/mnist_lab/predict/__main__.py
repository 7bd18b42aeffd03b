"""``make predict``: ``python -m mnist_lab.predict <checkpoint or run id> <image or folder> [--out file.csv]``."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path

from torch import Tensor

from mnist_lab.data.datasets import get_dataset
from mnist_lab.errors import TemplateError
from mnist_lab.predict import find_images, load_classifier, predict_images


def write_csv(out: Path, paths: list[Path], probs: Tensor, names: tuple[str, ...]) -> None:
    """``file, predicted, class, probability, p0 .. p<k>``, one row per image (``class``: the class's name)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "predicted", "class", "probability", *(f"p{k}" for k in range(probs.shape[1]))])
        for path, p, best in zip(paths, probs.tolist(), probs.argmax(dim=1).tolist(), strict=True):
            writer.writerow([path, best, names[best], f"{p[best]:.6f}", *(f"{v:.6f}" for v in p)])


def table(paths: list[Path], probs: Tensor, names: tuple[str, ...]) -> str:
    width, name_width = max(len("file"), *(len(str(p)) for p in paths)), max(len("class"), *map(len, names))
    lines = [f"{'file':<{width}}  predicted  {'class':<{name_width}}  probability"]
    for path, p, best in zip(paths, probs.tolist(), probs.argmax(dim=1).tolist(), strict=True):
        lines.append(f"{str(path):<{width}}  {best:>9}  {names[best]:<{name_width}}  {p[best]:>11.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_lab.predict", description="Classify digit images.")
    parser.add_argument("model", help="a checkpoint file (.ckpt) or an MLflow run id")
    parser.add_argument("input", type=Path, help="a PNG/JPG file of any size, or a folder of them")
    parser.add_argument("--out", type=Path, default="outputs/image_predictions.csv", help="default: %(default)s")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a run id downloads its checkpoint
    try:
        paths = find_images(args.input)
        model = load_classifier(args.model)
        probs = predict_images(model, paths)
    except TemplateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = get_dataset(model.dataset).class_names  # of the data the model learned
    print(table(paths, probs, names))
    write_csv(args.out, paths, probs, names)
    print(f"wrote {len(paths)} predictions to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
