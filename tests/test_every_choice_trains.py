"""Every activation and every init trains end to end: a few steps through Lightning on the tiny
MNIST, no logger, no checkpoint, no callback but a loss recorder."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from quiet_trainer import LossRecorder, quiet_trainer

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import CNN, MLP, ConvBlockSpec
from mnist_lab.models.components.activations import ACTIVATIONS
from mnist_lab.models.components.init import INITS


def _fit(net: torch.nn.Module, data_dir: Path, tmp_path: Path) -> tuple[float, float]:
    """The first and the last training loss of one epoch (training only: 10 steps)."""
    L.seed_everything(0, verbose=False)
    recorder = LossRecorder()
    losses = recorder.losses
    trainer = quiet_trainer(
        default_root_dir=tmp_path, max_epochs=1, limit_val_batches=0, callbacks=[recorder]
    )
    data = MNISTDataModule(str(data_dir), batch_size=100, eval_batch_size=300, val_size=200)
    model = Classifier(net, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3))
    trainer.fit(model, datamodule=data)
    return losses[0], losses[-1]


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation_trains(activation: str, fake_mnist: Path, tmp_path: Path) -> None:
    first, last = _fit(MLP(depth=2, width=32, activation=activation), fake_mnist, tmp_path)
    assert torch.isfinite(torch.tensor(last))
    assert last < first  # the output layer learns even when (step) nothing below it can


@pytest.mark.parametrize("scheme", sorted(INITS))
def test_every_init_trains(scheme: str, fake_mnist: Path, tmp_path: Path) -> None:
    first, last = _fit(MLP(depth=2, width=32, weight_init=scheme), fake_mnist, tmp_path)
    assert torch.isfinite(torch.tensor(last))
    if (
        scheme == "zeros"
    ):  # all-zero ReLU units output 0, so no weight gets a gradient: chance level stays
        assert abs(last - math.log(10)) < 0.02
    else:
        assert last < first


def test_cnn_with_every_regulariser_trains(fake_mnist: Path, tmp_path: Path) -> None:
    net = CNN(blocks=[ConvBlockSpec(8, pool="max")], head_width=16, dropout=0.2, activation="prelu")
    first, last = _fit(net, fake_mnist, tmp_path)
    assert last < first
