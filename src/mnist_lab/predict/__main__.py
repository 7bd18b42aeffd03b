"""``make predict``: ``python -m mnist_lab.predict <checkpoint or run id> <image or folder> [--out file.csv]``."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from mnist_lab.data.datasets import get_dataset
from mnist_lab.errors import TemplateError
from mnist_lab.predict.images import find_images, load_classifier, predict_images

DEFAULT_OUT = Path("outputs/image_predictions.csv")


def write_csv(out: Path, paths: list[Path], probs: Tensor, names: Sequence[str]) -> None:
    """``file, predicted, class, probability, p0 .. p<k>``: one row per image (``class``: the class's name)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "predicted", "class", "probability", *(f"p{k}" for k in range(probs.shape[1]))])
        for path, p in zip(paths, probs.tolist(), strict=True):
            best = max(range(len(p)), key=p.__getitem__)
            writer.writerow([str(path), best, names[best], f"{p[best]:.6f}", *(f"{v:.6f}" for v in p)])


def table(paths: list[Path], probs: Tensor, names: Sequence[str]) -> str:
    width = max(len("file"), *(len(str(p)) for p in paths))
    name_width = max(len("class"), *(len(n) for n in names))
    lines = [f"{'file':<{width}}  predicted  {'class':<{name_width}}  probability"]
    for path, p in zip(paths, probs, strict=True):
        best = int(p.argmax())
        lines.append(f"{str(path):<{width}}  {best:>9}  {names[best]:<{name_width}}  {float(p.max()):>11.4f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lab.predict", description="Classify digit images (PNG/JPG, any size)."
    )
    parser.add_argument("model", help="a checkpoint file (.ckpt) or an MLflow run id")
    parser.add_argument("input", type=Path, help="an image file or a folder of them")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the CSV to write (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a run id downloads its checkpoint
    try:
        paths = find_images(args.input)
        model = load_classifier(args.model)
        probs = predict_images(model, paths)
    except TemplateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    names = get_dataset(getattr(model, "dataset", "mnist")).class_names  # the data the model learned
    print(table(paths, probs, names))
    write_csv(args.out, paths, probs, names)
    print(f"wrote {len(paths)} predictions to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
