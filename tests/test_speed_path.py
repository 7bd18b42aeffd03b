"""The fast path: batches cut from resident tensors, metrics updated (not computed) per step,
clipping that skips its no-op rescale, evaluation under inference mode, and the GPU-only options
(``compile``, ``channels_last``, data on the device) falling back cleanly on a CPU. What the
speed preset resolves to: tests/test_configs.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quiet_trainer import quiet_trainer

from mnist_lab.data.batches import TensorBatchLoader
from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import CNN, MLP


def test_shuffled_batches_cover_every_index_once_and_eval_batches_are_views() -> None:
    images, labels = torch.arange(1000.0).view(1000, 1), torch.arange(1000)
    loader = TensorBatchLoader(images, labels, 128, shuffle=True, seed=0)
    train = [y for _, y in loader]
    assert len(train) == len(loader) == 8
    assert torch.equal(torch.cat(train).sort().values, torch.arange(1000))
    assert [len(b) for b in train] == [128] * 7 + [104]
    evaluation = list(TensorBatchLoader(images, labels, 300))
    assert [len(y) for _, y in evaluation] == [300, 300, 300, 100]
    assert all(
        x.data_ptr() == images[300 * i :].data_ptr() for i, (x, _) in enumerate(evaluation)
    )  # views
    x, y = next(iter(loader))  # gathered by index: each image stays with its label
    assert torch.equal(x.squeeze(1), y.float())


def test_the_training_order_follows_the_seed(fake_mnist: Path) -> None:
    dm = MNISTDataModule(str(fake_mnist), val_size=200, batch_size=64)
    dm.setup("fit")
    torch.manual_seed(1)
    first = [y for _, y in dm.train_dataloader()]
    torch.manual_seed(1)
    second = [y for _, y in dm.train_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_data_stays_on_the_cpu_without_an_accelerator(fake_mnist: Path) -> None:
    dm = MNISTDataModule(str(fake_mnist), val_size=200, batch_size=64, on_device=True)
    model = Classifier(MLP(depth=1, width=16))
    t = quiet_trainer(limit_train_batches=2, limit_val_batches=1)
    t.fit(model, datamodule=dm)
    assert dm.data_device() == torch.device("cpu")
    assert dm._splits["train"].images.device.type == "cpu"


def test_compile_falls_back_cleanly_on_cpu_and_channels_last_applies(
    fake_mnist: Path, caplog
) -> None:
    dm = MNISTDataModule(str(fake_mnist), val_size=200, batch_size=64)
    net = CNN(blocks=None, head_width=16)
    model = Classifier(net, compile=True, channels_last=True)
    with caplog.at_level("INFO", logger="mnist_lab.models.classifier"):
        quiet_trainer(limit_train_batches=3, limit_val_batches=1).fit(model, datamodule=dm)
    assert model._compiled is None
    assert "ignored on cpu" in caplog.text
    conv = net.blocks[1].layer.weight  # (32, 32, 3, 3): the two layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    # The weights keep their plain names: checkpoints load in runs without the options.
    assert all(not k.startswith("_compiled") for k in model.state_dict())


def test_cosine_warmup_starts_small_from_the_very_first_step() -> None:
    from mnist_lab.models.schedules import CosineDecay

    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    fraction, horizon = 0.1, 1000
    schedule = CosineDecay(optimizer, warmup_fraction=fraction)
    schedule.set_horizon(horizon)  # what Classifier.configure_optimizers does
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([(step + 1) / (fraction * horizon) for step in range(3)])
