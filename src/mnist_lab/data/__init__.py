"""MNIST-family data as tensors: IDX checks, the LightningDataModule, batched augmentation."""

from mnist_lab.data.mnist_datamodule import MNISTDataModule

__all__ = ["MNISTDataModule"]
