"""MNIST, Fashion-MNIST and KMNIST as a LightningDataModule that keeps every split in tensors.

torchvision decodes the IDX files once, the images are normalised once, and batches are cut by
index (:class:`~mnist_lab.data.batches.TensorBatchLoader`): the per-sample PIL -> ToTensor ->
collate path is several times slower on a 2-core CPU than the MLP's own step. On a GPU the tensors
move to the device once (``on_device``) and batches are gathered there, with no copy per batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from mnist_lab.data.augment import random_affine
from mnist_lab.data.batches import Split, TensorBatchLoader
from mnist_lab.data.datasets import DATASETS, get_dataset
from mnist_lab.data.idx import MNIST_FILES, check_mnist_raw
from mnist_lab.errors import ConfigError, DataError

MNIST_MEAN, MNIST_STD = DATASETS["mnist"].mean, DATASETS["mnist"].std


def normalise(images: Tensor, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28), normalised with the dataset's mean and std
    (MNIST's by default)."""
    return ((images.float() / 255.0 - mean) / std).unsqueeze(1).contiguous()


class MNISTDataModule(L.LightningDataModule):
    """A dataset of the MNIST family from ``data_dir``, a torchvision root
    (``<data_dir>/<Class>/raw/*-ubyte``).

    ``num_classes``, ``image_shape`` and ``class_names`` say what the data is; the CLI links them
    into the model.

    Args:
        data_dir: the torchvision root; the download (``download``) is tried only when files are
            absent.
        dataset: ``mnist``, ``fashion_mnist`` or ``kmnist``
            (:data:`~mnist_lab.data.datasets.DATASETS`).
        batch_size: of training; ``eval_batch_size`` of validation, test and predict.
        val_size: images of the training file held out for validation, the first of a
            ``split_seed`` permutation.
        train_size: train on the next this many (None: all the rest), so validation never depends
            on it and a smaller subset lies inside a larger one, whatever the run's seed.
        augment: a small random affine (``augment_degrees``, ``augment_translate``) on training
            batches.
        shuffle_seed: of the training order (epoch ``e`` uses ``(shuffle_seed, e)``); default: the
            run's seed.
        on_device: keep the data on the trainer's GPU and gather batches there (``False``: in host
            memory).
    """

    # the IDX checks hold every dataset of the family to it
    image_shape: tuple[int, int, int] = (1, 28, 28)

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
            raise ConfigError(
                f"batch sizes must be positive, got {batch_size} and {eval_batch_size}"
            )
        if val_size <= 0 or (train_size is not None and train_size <= 0):
            raise ConfigError(
                f"val_size and train_size must be positive, got {val_size} and {train_size}"
            )
        self.spec = get_dataset(dataset)
        self.save_hyperparameters(logger=False)
        self.data_dir = Path(data_dir)
        self.raw_dir = self.data_dir / self.spec.torchvision_class / "raw"
        self._splits: dict[str, Split] = {}
        self._train_loader: TensorBatchLoader | None = None
        # a checkpoint's, read before the loader exists
        self._train_state: dict[str, Any] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.spec.class_names)

    @property
    def class_names(self) -> list[str]:
        return list(self.spec.class_names)

    def _torchvision(self, train: bool, download: bool = False) -> Any:
        from torchvision import datasets  # slow to import: only when the data is read

        return getattr(datasets, self.spec.torchvision_class)(
            str(self.data_dir), train=train, download=download
        )

    def _check_sizes(self, n_images: int) -> None:
        """Validation must leave training images, and ``train_size`` must fit in what it leaves."""
        val_size, train_size = self.hparams.val_size, self.hparams.train_size
        if val_size >= n_images:
            raise ConfigError(f"val_size={val_size} leaves no training images of {n_images}")
        if train_size is not None and train_size > n_images - val_size:
            raise ConfigError(
                f"train_size={train_size} is more than the {n_images - val_size} training images "
                f"left of {n_images} after val_size={val_size}"
            )

    def prepare_data(self) -> None:
        """Download only when files are absent; check files and split sizes before a run exists."""
        if not all((self.raw_dir / name).is_file() for name in MNIST_FILES):
            self._download()
        self._check_sizes(check_mnist_raw(self.raw_dir, len(self.spec.class_names)))

    def _download(self) -> None:
        expected = "\n  ".join(str(self.raw_dir / name) for name in MNIST_FILES)
        hint = (
            f"{self.spec.torchvision_class} is missing from {self.data_dir}. "
            f"Expected these files:\n  {expected}\n"
            "Copy them there (uncompressed IDX files), or set DATA_DIR / --data.data_dir "
            "to a folder that has them, or allow the download with internet access."
        )
        if not self.hparams.download:
            raise DataError(hint)
        created = [p for p in (self.data_dir, self.raw_dir.parent, self.raw_dir) if not p.exists()]
        try:
            self._torchvision(train=True, download=True)  # fetches all four files
        except Exception as err:  # noqa: BLE001 - any network failure means the same to the user
            for folder in reversed(created):  # leave no empty folders behind
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
            raise DataError(f"{hint}\nThe download failed: {type(err).__name__}: {err}") from None

    def _load(self, train: bool) -> tuple[Tensor, Tensor]:
        data = self._torchvision(train)
        return normalise(data.data, self.spec.mean, self.spec.std), data.targets.long()

    def setup(self, stage: str | None = None) -> None:
        """Decode once into tensors; later calls (fit, then test) reuse them."""
        if stage in (None, "fit", "validate") and "train" not in self._splits:
            # again: setup() may run without prepare_data()
            self._check_sizes(check_mnist_raw(self.raw_dir, len(self.spec.class_names)))
            images, labels = self._load(train=True)
            hp = self.hparams
            order = torch.randperm(
                len(labels), generator=torch.Generator().manual_seed(hp.split_seed)
            )
            # train_size None: the rest
            val, train = order[: hp.val_size], order[hp.val_size :][: hp.train_size]
            self._splits["train"] = Split(images[train], labels[train])
            self._splits["val"] = Split(images[val], labels[val])
        if stage in (None, "test", "predict") and "test" not in self._splits:
            check_mnist_raw(self.raw_dir, len(self.spec.class_names))
            self._splits["test"] = Split(*self._load(train=False))

    def data_device(self) -> torch.device:
        """Where the tensors live: the trainer's accelerator if ``on_device`` and not the CPU."""
        trainer = self.trainer
        if (
            self.hparams.on_device
            and trainer is not None
            and trainer.strategy.root_device.type != "cpu"
        ):
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _loader(self, split: str, batch_size: int, shuffle: bool = False) -> TensorBatchLoader:
        data, device, trainer = self._splits[split], self.data_device(), self.trainer
        if data.labels.device != device:  # moved once: later loaders find it there
            data = self._splits[split] = Split(data.images.to(device), data.labels.to(device))
        seed = self.hparams.shuffle_seed
        if seed is None:  # the run's; under DDP rank 0's, so that every process shards one order
            seed = torch.initial_seed()
            if trainer is not None and trainer.world_size > 1:
                seed = int(trainer.strategy.broadcast(seed, src=0))
        return TensorBatchLoader(
            data.images,
            data.labels,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            epoch=None if trainer is None else lambda: trainer.current_epoch,
            rank=0 if trainer is None else trainer.global_rank,
            world_size=1 if trainer is None else trainer.world_size,
            equal_shards=shuffle,
        )

    def train_dataloader(self) -> TensorBatchLoader:
        self._train_loader = self._loader("train", self.hparams.batch_size, shuffle=True)
        if self._train_state is not None:
            self._train_loader.load_state_dict(self._train_state)
            self._train_state = None
        return self._train_loader

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", self.hparams.eval_batch_size)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", self.hparams.eval_batch_size)

    predict_dataloader = test_dataloader  # the test images

    def state_dict(self) -> dict[str, Any]:
        """Where the training epoch stands, in every checkpoint. Lightning saves stateful loaders
        too, but does not restore one built before the checkpoint was read
        (``estimated_stepping_batches`` builds it early)."""
        return (
            {} if self._train_loader is None else {"train_loader": self._train_loader.state_dict()}
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_state = state_dict.get("train_loader")
        if self._train_state is not None and self._train_loader is not None:
            self._train_loader.load_state_dict(self._train_state)
            self._train_state = None

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches only, on the device, as one batched op. The model summary's
        example input, a bare tensor, passes through here too."""
        hp, trainer = self.hparams, self.trainer
        if (
            hp.augment
            and isinstance(batch, (tuple, list))
            and trainer is not None
            and trainer.training
        ):
            x, y = batch
            background = -self.spec.mean / self.spec.std  # an empty pixel, normalised
            return random_affine(
                x, hp.augment_degrees, hp.augment_translate, background=background
            ), y
        return batch
