"""The dataset registry: one name -> where its files live, how to read them, how to normalise them.

The MNIST family shares one format (four IDX files of 28x28 greyscale images, 10 classes), so a
dataset here is its torchvision class, its statistics and its class names; everything else (the
tensor-resident loader, the checks, the figures) is shared. Adding one is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_lab.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """What the datamodule and the tracking need to know about one dataset."""

    torchvision_class: str  # the class in torchvision.datasets; also its folder under the data root
    mean: float  # of the training pixels, in [0, 1]
    std: float
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int] = (1, 28, 28)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("MNIST", 0.1307, 0.3081, tuple(str(d) for d in range(10))),
    "fashion_mnist": DatasetSpec(
        "FashionMNIST",
        0.2860,
        0.3530,
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
    "kmnist": DatasetSpec("KMNIST", 0.1918, 0.3483, ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}


def get_dataset(name: str) -> DatasetSpec:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None
