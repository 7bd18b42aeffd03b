"""Checks on MNIST's IDX files before torchvision reads them, so bad files give a clear error.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian int32 per dimension, then the values. A truncated download or a wrong file fails
here with its name and what was wrong, rather than as a reshape error deep inside torchvision.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

from mnist_lab.errors import DataError

UBYTE = 0x08

# file stem -> (number of dimensions, trailing shape); the item count is read from the header.
MNIST_FILES: dict[str, tuple[int, tuple[int, ...]]] = {
    "train-images-idx3-ubyte": (3, (28, 28)),
    "train-labels-idx1-ubyte": (1, ()),
    "t10k-images-idx3-ubyte": (3, (28, 28)),
    "t10k-labels-idx1-ubyte": (1, ()),
}


def read_header(path: Path) -> tuple[int, tuple[int, ...]]:
    """Return ``(type_code, dims)`` from an IDX header, or raise DataError naming the file."""
    with path.open("rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:2] != b"\x00\x00":
            raise DataError(f"{path} is not an IDX file (bad magic number {magic!r})")
        ndim = magic[3]
        raw = f.read(4 * ndim)
    if len(raw) < 4 * ndim:
        raise DataError(f"{path} is truncated inside its header")
    return magic[2], struct.unpack(f">{ndim}i", raw)


def check_idx(path: Path, ndim: int, trailing: tuple[int, ...]) -> int:
    """Validate one MNIST IDX file's type, shape and length; return its item count."""
    code, dims = read_header(path)
    if code != UBYTE or len(dims) != ndim or tuple(dims[1:]) != trailing:
        raise DataError(
            f"{path} has type 0x{code:02x} and shape {dims}; expected unsigned bytes of shape (N, *{trailing})"
        )
    expected = 4 + 4 * ndim + math.prod(dims)
    actual = path.stat().st_size
    if actual != expected:
        raise DataError(f"{path} is {actual} bytes but its header promises {expected}: truncated or corrupt")
    return dims[0]


def check_mnist_raw(raw_dir: Path) -> None:
    """Validate the four MNIST files and that each image file matches its label file's count."""
    counts = {stem: check_idx(raw_dir / stem, *shape) for stem, shape in MNIST_FILES.items()}
    for split in ("train", "t10k"):
        images, labels = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if images != labels:
            raise DataError(f"{raw_dir}: {split} has {images} images but {labels} labels")


def missing_files(raw_dir: Path) -> list[str]:
    """The MNIST files absent from ``raw_dir``."""
    return [stem for stem in MNIST_FILES if not (raw_dir / stem).is_file()]
