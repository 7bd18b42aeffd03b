"""MNIST as a LightningDataModule that keeps the whole dataset in tensors.

The IDX files are decoded once (by torchvision) into uint8 tensors, normalised once into a float
tensor, and batches are cut by index. That avoids the per-sample PIL -> ToTensor -> collate path,
which on a 2-core CPU is several times slower than the MLP's own forward and backward pass.

On a GPU the tensors move to the device once, in ``setup`` (``on_device``), and batches are
gathered there: no host-to-device copy per batch. The order of a training epoch is one
``torch.randperm`` cut into slices, so no per-index Python work runs either.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from mnist_lab.data.augment import random_affine
from mnist_lab.data.idx import MNIST_FILES, check_mnist_raw, missing_files
from mnist_lab.errors import ConfigError, DataError

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


class TensorBatches(Dataset):
    """A dataset indexed by a list or tensor of indices (or a slice), returning a whole batch with one gather."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: list[int] | Tensor | slice) -> tuple[Tensor, Tensor]:
        if isinstance(index, slice):  # evaluation: contiguous views, no copy
            return self.images[index], self.labels[index]
        idx = torch.as_tensor(index, device=self.labels.device)
        return self.images[idx], self.labels[idx]

    def to(self, device: torch.device | str) -> TensorBatches:
        return TensorBatches(self.images.to(device), self.labels.to(device))


class SliceBatches(Sampler):
    """Batches of indices for :class:`TensorBatches`: slices of a fresh ``randperm`` when shuffling
    (on the data's device), else contiguous ``slice`` objects. Yields whole batches (``batch_size=None``)."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, device: torch.device | str = "cpu") -> None:
        self.n, self.batch_size, self.shuffle, self.device = n, batch_size, shuffle, torch.device(device)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __iter__(self):
        if not self.shuffle:
            for start in range(0, self.n, self.batch_size):
                yield slice(start, min(start + self.batch_size, self.n))
            return
        # The same draws as torch's RandomSampler: one seed from the global CPU generator (so
        # seed_everything fixes the order), then randperm; a run sees the batches it saw before.
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(seed)).to(self.device)
        yield from order.split(self.batch_size)


def normalise(images: Tensor) -> Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) with MNIST's mean and std."""
    return ((images.float() / 255.0 - MNIST_MEAN) / MNIST_STD).unsqueeze(1).contiguous()


class MNISTDataModule(L.LightningDataModule):
    """MNIST from ``data_dir`` (a torchvision root: ``<data_dir>/MNIST/raw/*-ubyte``).

    Args:
        data_dir: torchvision root; download is tried only when files are absent.
        batch_size: training batch size; ``eval_batch_size`` for validation, test and predict.
        val_size: images held out of the 60,000 for validation, by a ``split_seed`` permutation.
        augment: small random affine on training batches (rotation, shift, zoom), batched.
        on_device: keep the dataset on the trainer's accelerator (a GPU) and gather batches there;
            ``False`` keeps it in host memory and lets Lightning copy each batch.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        split_seed: int = 42,
        augment: bool = False,
        augment_degrees: float = 10.0,
        augment_translate: float = 0.1,
        download: bool = True,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        if batch_size <= 0 or eval_batch_size <= 0:
            raise ConfigError(f"batch sizes must be positive, got {batch_size} and {eval_batch_size}")
        if val_size <= 0:
            raise ConfigError(f"val_size must be positive, got {val_size}")
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self._splits: dict[str, TensorBatches] = {}

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "MNIST" / "raw"

    def prepare_data(self) -> None:
        """Download only when files are absent; then check every file's header and length."""
        if missing_files(self.raw_dir):
            self._download()
        check_mnist_raw(self.raw_dir)

    def _download(self) -> None:
        from torchvision.datasets import MNIST

        expected = "\n  ".join(str(self.raw_dir / stem) for stem in MNIST_FILES)
        hint = (
            f"MNIST is missing from {self.data_dir}. Expected these files:\n  {expected}\n"
            "Copy them there (uncompressed IDX files), or set DATA_DIR / --data.data_dir to a folder "
            "that has them, or allow the download with internet access."
        )
        if not self.hparams.download:
            raise DataError(hint)
        created = [p for p in (self.data_dir, self.raw_dir.parent, self.raw_dir) if not p.exists()]
        try:
            MNIST(str(self.data_dir), train=True, download=True)
            MNIST(str(self.data_dir), train=False, download=True)
        except Exception as err:  # noqa: BLE001 - any network failure means the same to the user
            for folder in reversed(created):  # leave nothing half-written behind
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise DataError(f"{hint}\nThe download failed: {type(err).__name__}: {err}") from None

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        from torchvision.datasets import MNIST

        ds = MNIST(str(self.data_dir), train=train, download=False)
        return normalise(ds.data), ds.targets.long()

    def setup(self, stage: str | None = None) -> None:
        """Decode once into tensors; later calls (fit then test) reuse what is there."""
        if stage in (None, "fit", "validate") and "train" not in self._splits:
            check_mnist_raw(self.raw_dir)
            images, labels = self._load(train=True)
            if self.hparams.val_size >= len(labels):
                raise ConfigError(f"val_size={self.hparams.val_size} leaves no training images of {len(labels)}")
            g = torch.Generator().manual_seed(self.hparams.split_seed)
            order = torch.randperm(len(labels), generator=g)
            val, train = order[: self.hparams.val_size], order[self.hparams.val_size :]
            self._splits["train"] = TensorBatches(images[train], labels[train])
            self._splits["val"] = TensorBatches(images[val], labels[val])
        if stage in (None, "test", "predict") and "test" not in self._splits:
            check_mnist_raw(self.raw_dir)
            self._splits["test"] = TensorBatches(*self._load(train=False))

    def data_device(self) -> torch.device:
        """Where the tensors live: the trainer's accelerator when ``on_device`` and it is not the CPU."""
        trainer = self.trainer
        if self.hparams.on_device and trainer is not None:
            device = trainer.strategy.root_device
            if device.type != "cpu":
                return device
        return torch.device("cpu")

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        device = self.data_device()
        data = self._splits[split]
        if data.labels.device != device:
            data = self._splits[split] = data.to(device)
        order = SliceBatches(len(data), batch_size, shuffle, device)
        return DataLoader(data, batch_size=None, sampler=order)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.hparams.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        """Augment training batches only, on the device, as one batched op.

        Lightning also routes the model summary's example input (a bare tensor) through here.
        """
        is_pair = isinstance(batch, (tuple, list)) and len(batch) == 2
        if is_pair and self.hparams.augment and self.trainer is not None and self.trainer.training:
            x, y = batch
            background = -MNIST_MEAN / MNIST_STD
            x = random_affine(
                x,
                degrees=self.hparams.augment_degrees,
                translate=self.hparams.augment_translate,
                background=background,
            )
            return x, y
        return batch
