"""MNIST as tensors: IDX checks, the LightningDataModule, batched augmentation."""
