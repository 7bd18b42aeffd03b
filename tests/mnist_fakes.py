"""A tiny, learnable MNIST written in the real IDX format, so the real loading code runs."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file: magic 0x0000 08 ndim, big-endian dims, bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}i", *array.shape
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def class_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One bright 6x6 square per class at a class-specific spot, plus noise: easy to learn."""
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = 3 + 7 * (label // 4), 2 + 6 * (label % 4)
        images[i, row : row + 6, col : col + 6] = 255
    return images


def write_fake_mnist(
    root: Path, n_train: int = 1200, n_test: int = 300, seed: int = 0, folder: str = "MNIST"
) -> Path:
    """Write the four IDX files under ``root/<folder>/raw`` (``FashionMNIST``, ``KMNIST`` share the
    format and the file names); return ``root`` (a torchvision root)."""
    rng = np.random.default_rng(seed)
    raw = root / folder / "raw"
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        rng.shuffle(labels)
        write_idx(raw / f"{split}-images-idx3-ubyte", class_images(labels, rng))
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels.astype(np.uint8))
    return root
