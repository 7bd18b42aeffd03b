"""MNIST, Fashion-MNIST and KMNIST as a LightningDataModule that keeps the whole dataset in tensors.

The IDX files are decoded once (by torchvision) into uint8 tensors, normalised once into a float
tensor, and batches are cut by index. That avoids the per-sample PIL -> ToTensor -> collate path,
which on a 2-core CPU is several times slower than the MLP's own forward and backward pass.

On a GPU the tensors move to the device once (``on_device``), and batches are gathered there: no
host-to-device copy per batch. :class:`~mnist_lab.data.batches.TensorBatchLoader` cuts the batches:
a training epoch is one seeded ``torch.randperm`` cut into slices (resumable mid-epoch, sharded under
DDP), evaluation batches are contiguous views.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from mnist_lab.data.augment import random_affine
from mnist_lab.data.batches import TensorBatches, TensorBatchLoader
from mnist_lab.data.datasets import get_dataset
from mnist_lab.data.idx import MNIST_FILES, check_mnist_raw, missing_files, read_header
from mnist_lab.data.splits import check_split_sizes, split_indices
from mnist_lab.errors import ConfigError, DataError

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081


def normalise(images: Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) with the dataset's mean and std (MNIST's by default)."""
    return ((images.float() / 255.0 - mean) / std).unsqueeze(1).contiguous()


class MNISTDataModule(L.LightningDataModule):
    """A dataset of the MNIST family from ``data_dir`` (a torchvision root: ``<data_dir>/<Class>/raw/*-ubyte``).

    ``num_classes``, ``image_shape`` and ``class_names`` tell the model and the callbacks what the
    data is (the CLI links them into the model), so nothing outside this layer assumes MNIST.

    Args:
        data_dir: torchvision root; download is tried only when files are absent.
        dataset: a name from :data:`~mnist_lab.data.datasets.DATASETS` (``mnist``, ``fashion_mnist``,
            ``kmnist``): its files live in ``<data_dir>/MNIST``, ``FashionMNIST``, ``KMNIST``.
        batch_size: training batch size; ``eval_batch_size`` for validation, test and predict.
        val_size: images held out of the 60,000 for validation, by a ``split_seed`` permutation.
        train_size: train on only this many of the images left after the validation split (None: all).
            A fixed subset by ``split_seed``, the same whatever the run's seed (:mod:`~mnist_lab.data.splits`).
        augment: small random affine on training batches (rotation, shift, zoom), batched.
        shuffle_seed: seed of the training order (epoch ``e`` uses ``(shuffle_seed, e)``); default: the run's seed
            (``seed_everything``).
            The order is saved in checkpoints, so a resumed epoch continues where it stopped.
        on_device: keep the dataset on the trainer's accelerator (a GPU) and gather batches there;
            ``False`` keeps it in host memory and lets Lightning copy each batch.
    """

    def __init__(
        self,
        data_dir: str = "data/",
        dataset: str = "mnist",
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        val_size: int = 5000,
        split_seed: int = 42,
        train_size: int | None = None,
        augment: bool = False,
        augment_degrees: float = 10.0,
        augment_translate: float = 0.1,
        download: bool = True,
        shuffle_seed: int | None = None,
        on_device: bool = True,
    ) -> None:
        super().__init__()
        if batch_size <= 0 or eval_batch_size <= 0:
            raise ConfigError(f"batch sizes must be positive, got {batch_size} and {eval_batch_size}")
        if val_size <= 0:
            raise ConfigError(f"val_size must be positive, got {val_size}")
        if train_size is not None and train_size <= 0:
            raise ConfigError(f"train_size must be positive (or None for all), got {train_size}")
        self.spec = get_dataset(dataset)
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self._splits: dict[str, TensorBatches] = {}
        self._train_loader: TensorBatchLoader | None = None
        self._train_state: dict[str, Any] | None = None  # restored before the loader exists

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / self.spec.torchvision_class / "raw"

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.spec.image_shape

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    def _torchvision(self, train: bool, download: bool) -> Any:
        import torchvision.datasets

        return getattr(torchvision.datasets, self.spec.torchvision_class)(
            str(self.data_dir), train=train, download=download
        )

    def prepare_data(self) -> None:
        """Download only when files are absent; then check every file's header and length."""
        if missing_files(self.raw_dir):
            self._download()
        check_mnist_raw(self.raw_dir)
        n_train = read_header(self.raw_dir / "train-labels-idx1-ubyte")[1][0]
        # here, before the run exists (and again in setup(), which may run without prepare_data)
        check_split_sizes(n_train, self.hparams.val_size, self.hparams.train_size)

    def _download(self) -> None:
        name = self.spec.torchvision_class
        expected = "\n  ".join(str(self.raw_dir / stem) for stem in MNIST_FILES)
        hint = (
            f"{name} is missing from {self.data_dir}. Expected these files:\n  {expected}\n"
            "Copy them there (uncompressed IDX files), or set DATA_DIR / --data.data_dir to a folder "
            "that has them, or allow the download with internet access."
        )
        if not self.hparams.download:
            raise DataError(hint)
        created = [p for p in (self.data_dir, self.raw_dir.parent, self.raw_dir) if not p.exists()]
        try:
            self._torchvision(train=True, download=True)
            self._torchvision(train=False, download=True)
        except Exception as err:  # noqa: BLE001 - any network failure means the same to the user
            for folder in reversed(created):  # leave nothing half-written behind
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise DataError(f"{hint}\nThe download failed: {type(err).__name__}: {err}") from None

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        ds = self._torchvision(train=train, download=False)
        return normalise(ds.data, self.spec.mean, self.spec.std), ds.targets.long()

    def setup(self, stage: str | None = None) -> None:
        """Decode once into tensors; later calls (fit then test) reuse what is there."""
        if stage in (None, "fit", "validate") and "train" not in self._splits:
            check_mnist_raw(self.raw_dir)
            images, labels = self._load(train=True)
            hp = self.hparams
            val, train = split_indices(len(labels), hp.val_size, hp.train_size, hp.split_seed)
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

    def _loader(self, split: str, batch_size: int, shuffle: bool) -> TensorBatchLoader:
        device = self.data_device()
        data = self._splits[split]
        if data.labels.device != device:
            data = self._splits[split] = data.to(device)
        trainer = self.trainer
        return TensorBatchLoader(
            data.images,
            data.labels,
            batch_size,
            shuffle=shuffle,
            seed=self._shuffle_seed(),
            epoch=(lambda: trainer.current_epoch) if trainer is not None else None,
            rank=trainer.global_rank if trainer is not None else 0,
            world_size=trainer.world_size if trainer is not None else 1,
            equal_shards=shuffle,
        )

    def _shuffle_seed(self) -> int:
        """``shuffle_seed``, else the run's seed; under DDP rank 0's, so every process shards one order."""
        seed = torch.initial_seed() if self.hparams.shuffle_seed is None else self.hparams.shuffle_seed
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1 and self.hparams.shuffle_seed is None:
            seed = int(trainer.strategy.broadcast(seed, src=0))
        return seed

    def train_dataloader(self) -> TensorBatchLoader:
        self._train_loader = self._loader("train", self.hparams.batch_size, shuffle=True)
        if self._train_state is not None:
            self._train_loader.load_state_dict(self._train_state)
            self._train_state = None
        return self._train_loader

    def state_dict(self) -> dict[str, Any]:
        """Where the training epoch stands, saved in every checkpoint (see :class:`TensorBatchLoader`).

        Lightning also saves stateful loaders itself, but does not restore them when the loader was
        built before the checkpoint was read (``estimated_stepping_batches`` builds it early).
        """
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = state_dict.get("train_loader")
        if state is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(state)
        else:
            self._train_state = state

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", self.hparams.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def predict_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", self.hparams.eval_batch_size, shuffle=False)

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        """Augment training batches only, on the device, as one batched op.

        Lightning also routes the model summary's example input (a bare tensor) through here.
        """
        is_pair = isinstance(batch, (tuple, list)) and len(batch) == 2
        if is_pair and self.hparams.augment and self.trainer is not None and self.trainer.training:
            x, y = batch
            background = -self.spec.mean / self.spec.std
            x = random_affine(
                x,
                degrees=self.hparams.augment_degrees,
                translate=self.hparams.augment_translate,
                background=background,
            )
            return x, y
        return batch
