"""Checks on the IDX files before torchvision reads them, so that a truncated download or a wrong
file fails with its name and what is wrong, not as a reshape error deep inside torchvision.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one
big-endian int32 per dimension, then the values.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

from mnist_lab.errors import DataError

# file -> the shape of one item (the item count is in the header)
MNIST_FILES: dict[str, tuple[int, ...]] = {
    "train-images-idx3-ubyte": (28, 28),
    "train-labels-idx1-ubyte": (),
    "t10k-images-idx3-ubyte": (28, 28),
    "t10k-labels-idx1-ubyte": (),
}


def check_idx(path: Path, item_shape: tuple[int, ...]) -> int:
    """Check one file's magic, type (unsigned bytes), shape and length; return its item count."""
    with path.open("rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:2] != b"\x00\x00":
            raise DataError(f"{path} is not an IDX file (bad magic number {magic!r})")
        header = f.read(4 * magic[3])
    if len(header) < 4 * magic[3]:
        raise DataError(f"{path} is truncated inside its header")
    dims = struct.unpack(f">{magic[3]}i", header)
    if magic[2] != 0x08 or not dims or dims[1:] != item_shape:
        raise DataError(
            f"{path} holds type 0x{magic[2]:02x} of shape {dims}, "
            f"not unsigned bytes of (N, *{item_shape})"
        )
    size, expected = path.stat().st_size, 4 + len(header) + math.prod(dims)
    if size != expected:
        raise DataError(
            f"{path} is {size} bytes but its header promises {expected}: truncated or corrupt"
        )
    return dims[0]


def check_mnist_raw(raw_dir: Path, num_classes: int = 10) -> int:
    """Check the four files, each image file against its label file's count, and the labels against
    ``num_classes`` (a byte out of range passes every header check); return the training count."""
    counts = {name: check_idx(raw_dir / name, shape) for name, shape in MNIST_FILES.items()}
    for split in ("train", "t10k"):
        images, labels = counts[f"{split}-images-idx3-ubyte"], counts[f"{split}-labels-idx1-ubyte"]
        if images != labels:
            raise DataError(f"{raw_dir}: {split} has {images} images but {labels} labels")
        path = raw_dir / f"{split}-labels-idx1-ubyte"
        top = max(path.read_bytes()[8:], default=0)  # after the 8-byte header: one byte a label
        if top >= num_classes:
            raise DataError(
                f"{path} holds label {top}, but the dataset has {num_classes} classes: corrupt"
            )
    return counts["train-labels-idx1-ubyte"]
