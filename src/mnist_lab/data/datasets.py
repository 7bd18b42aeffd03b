"""The dataset registry. The MNIST family shares one format (four IDX files of 28x28 greyscale
images), so a dataset is its torchvision class, its pixel statistics and its class names; adding
one is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnist_lab.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    torchvision_class: str  # in torchvision.datasets; also its folder under the data root
    mean: float  # of the training pixels, in [0, 1]
    std: float
    class_names: tuple[str, ...]


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("MNIST", 0.1307, 0.3081, tuple(str(d) for d in range(10))),
    "fashion_mnist": DatasetSpec(
        "FashionMNIST",
        0.2860,
        0.3530,
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "kmnist": DatasetSpec(
        "KMNIST", 0.1918, 0.3483, ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    """The registry entry for ``name``; an unknown name lists the valid ones."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[name]
