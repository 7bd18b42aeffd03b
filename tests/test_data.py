"""The datamodule on real IDX files: split, training subset, normalisation, tensor-resident
batches, bad files."""

from __future__ import annotations

import inspect
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mnist_fakes import write_fake_mnist
from quiet_trainer import quiet_trainer

from mnist_lab.data.augment import random_affine
from mnist_lab.data.datasets import DATASETS
from mnist_lab.data.idx import check_mnist_raw
from mnist_lab.data.mnist_datamodule import MNIST_MEAN, MNIST_STD, MNISTDataModule
from mnist_lab.errors import ConfigError, DataError
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import MLP

FAKE = inspect.signature(write_fake_mnist).parameters
N_TRAIN, N_TEST = FAKE["n_train"].default, FAKE["n_test"].default  # the fake_mnist fixture's
VAL, BATCH = 200, 64


def test_split_sizes_are_fixed_by_the_seed(fake_mnist: Path) -> None:
    first = MNISTDataModule(str(fake_mnist), val_size=VAL)
    first.prepare_data()
    first.setup("fit")
    second = MNISTDataModule(str(fake_mnist), val_size=VAL)
    second.setup("fit")
    assert len(first._splits["train"]) == N_TRAIN - VAL and len(first._splits["val"]) == VAL
    assert torch.equal(first._splits["val"].labels, second._splits["val"].labels)
    assert torch.equal(first._splits["val"].images, second._splits["val"].images)


def test_images_are_normalised_tensors_and_batches_are_gathered_by_index(fake_mnist: Path) -> None:
    dm = MNISTDataModule(str(fake_mnist), batch_size=BATCH, eval_batch_size=128, val_size=VAL)
    dm.setup("fit")
    dm.setup("test")
    images = dm._splits["train"].images
    assert images.dtype == torch.float32 and images.shape[1:] == (1, 28, 28)
    assert images.max().item() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD, rel=1e-5)
    batches = list(dm.train_dataloader())
    full, rest = divmod(N_TRAIN - VAL, BATCH)
    assert [len(y) for _, y in batches] == [BATCH] * full + [rest] * (rest > 0)
    x, y = batches[0]
    assert x.shape == (BATCH, 1, 28, 28) and y.dtype == torch.long
    assert sum(len(y) for _, y in dm.test_dataloader()) == N_TEST


def test_augmentation_is_batched_and_keeps_the_background() -> None:
    background = -MNIST_MEAN / MNIST_STD
    x = torch.full((32, 1, 28, 28), background)
    x[:, :, 10:18, 10:18] = 2.0
    out = random_affine(x, degrees=15, translate=0.1, background=background)
    assert out.shape == x.shape
    assert torch.allclose(out[:, :, 0, 0], torch.full((32, 1), background), atol=1e-5)
    assert not torch.allclose(out, x)
    still = random_affine(x, degrees=0, translate=0, scale=(1, 1), background=background)
    assert torch.allclose(still, x, atol=1e-5)


def _copy(fake_mnist: Path, tmp_path: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(fake_mnist, root)
    return root


def test_truncated_file_is_reported_by_name(fake_mnist: Path, tmp_path: Path) -> None:
    root = _copy(fake_mnist, tmp_path)
    path = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        MNISTDataModule(str(root)).prepare_data()


def test_corrupt_magic_and_count_mismatch_are_reported(fake_mnist: Path, tmp_path: Path) -> None:
    root = _copy(fake_mnist, tmp_path)
    raw = root / "MNIST" / "raw"
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(b"\x12\x34" + labels.read_bytes()[2:])
    with pytest.raises(DataError, match="not an IDX file"):
        check_mnist_raw(raw)
    shutil.copy(raw / "train-labels-idx1-ubyte", labels)
    with pytest.raises(DataError, match=f"{N_TEST} images but {N_TRAIN} labels"):
        check_mnist_raw(raw)


def test_a_label_out_of_range_is_reported_before_training(fake_mnist: Path, tmp_path: Path) -> None:
    root = _copy(fake_mnist, tmp_path)
    labels = root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[-1] = 84  # valid header and length, one byte no class has
    labels.write_bytes(bytes(data))
    classes = len(DATASETS["mnist"].class_names)
    message = f"t10k-labels-idx1-ubyte holds label 84, but the dataset has {classes} classes"
    with pytest.raises(DataError, match=message):
        MNISTDataModule(str(root)).prepare_data()


def _train_split(fake_mnist: Path, **kwargs) -> MNISTDataModule:
    dm = MNISTDataModule(str(fake_mnist), val_size=VAL, batch_size=BATCH, shuffle_seed=3, **kwargs)
    dm.prepare_data()
    dm.setup("fit")
    return dm


SMALL, LARGER = (N_TRAIN - VAL) // 4, (N_TRAIN - VAL) // 2


def test_train_size_is_a_fixed_nested_subset_and_leaves_validation_alone(fake_mnist: Path) -> None:
    full = _train_split(fake_mnist)
    torch.manual_seed(123)  # the run's seed does not choose the subset
    small = _train_split(fake_mnist, train_size=SMALL)
    torch.manual_seed(456)
    larger = _train_split(fake_mnist, train_size=LARGER)
    assert len(small._splits["train"]) == SMALL
    assert len(small.train_dataloader()) == math.ceil(SMALL / BATCH)
    assert torch.equal(small._splits["val"].images, full._splits["val"].images)
    assert torch.equal(small._splits["train"].images, larger._splits["train"].images[:SMALL])
    assert torch.equal(larger._splits["train"].images, full._splits["train"].images[:LARGER])
    again = _train_split(fake_mnist, train_size=SMALL)._splits["train"]
    assert torch.equal(again.labels, small._splits["train"].labels)
    all_left = _train_split(fake_mnist, train_size=N_TRAIN - VAL)._splits["train"]
    assert len(all_left) == N_TRAIN - VAL


def test_train_size_too_large_or_not_positive_is_one_clear_error(fake_mnist: Path) -> None:
    left, over = N_TRAIN - VAL, N_TRAIN - VAL + 1
    message = f"train_size={over} is more than the {left} training images left of {N_TRAIN}"
    with pytest.raises(ConfigError, match=message):
        MNISTDataModule(str(fake_mnist), val_size=VAL, train_size=over).prepare_data()
    with pytest.raises(ConfigError, match=message):  # setup() checks too: it may run alone
        MNISTDataModule(str(fake_mnist), val_size=VAL, train_size=over).setup("fit")
    with pytest.raises(ConfigError, match="train_size must be positive"):
        MNISTDataModule(str(fake_mnist), train_size=0)


def test_train_size_shards_under_ddp_and_resumes_mid_epoch(fake_mnist: Path) -> None:
    dm = _train_split(fake_mnist, train_size=SMALL)
    orders = []
    for rank in (0, 1):  # what each DDP process's loader takes of the same epoch
        cpu = SimpleNamespace(root_device=torch.device("cpu"))
        dm.trainer = SimpleNamespace(global_rank=rank, world_size=2, current_epoch=0, strategy=cpu)
        loader = dm.train_dataloader()
        assert len(loader) == math.ceil(SMALL // 2 / BATCH)  # an equal half each
        orders.append(loader.order(0))
    taken = torch.cat(orders).tolist()  # no example twice, none outside the subset
    assert len(set(taken)) == len(taken) == SMALL // 2 * 2 and set(taken) <= set(range(SMALL))
    dm.trainer = None
    first = dm.train_dataloader()
    batches = iter(first)
    next(batches), next(batches)
    rest = [y for _, y in batches]
    resumed = _train_split(fake_mnist, train_size=SMALL)
    resumed.load_state_dict({"train_loader": {**first.state_dict(), "consumed": 2}})
    assert [y.tolist() for _, y in resumed.train_dataloader()] == [y.tolist() for y in rest]


def test_the_run_length_follows_train_size(fake_mnist: Path, tmp_path: Path) -> None:
    epochs = 2
    trainer = quiet_trainer(max_epochs=epochs, limit_val_batches=0, default_root_dir=tmp_path)
    data = MNISTDataModule(str(fake_mnist), val_size=VAL, batch_size=BATCH, train_size=SMALL)
    trainer.fit(Classifier(MLP(depth=1, width=8)), datamodule=data)
    steps = math.ceil(SMALL / BATCH) * epochs
    assert trainer.estimated_stepping_batches == steps and trainer.global_step == steps
