"""Lightning's loops switch this project's networks between train() and eval(); the loss takes logits."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.models.components import MLP
from mnist_lab.models.mnist_module import MNISTClassifier


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _running_stats(module: nn.Module) -> list[torch.Tensor]:
    return [b.clone() for name, b in module.named_buffers() if "running" in name]


class ModeRecorder(L.Callback):
    """Records whether the module and every submodule are in training mode, per stage."""

    def __init__(self) -> None:
        self.seen: dict[str, set[bool]] = {}

    def _record(self, stage: str, pl_module: L.LightningModule) -> None:
        modes = {m.training for m in pl_module.net.modules()} | {pl_module.training}
        self.seen.setdefault(stage, set()).update(modes)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._record("train", pl_module)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._record("sanity" if trainer.sanity_checking else "val", pl_module)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._record("test", pl_module)

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._record("predict", pl_module)


def _trainer(tmp_path: Path, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    return L.Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks or [],
    )


def test_lightning_loops_switch_modes_and_eval_passes_keep_running_stats(fake_mnist: Path, tmp_path: Path) -> None:
    data = MNISTDataModule(str(fake_mnist), batch_size=64, eval_batch_size=100, val_size=200)
    model = MNISTClassifier(MLP(depth=2, width=32, dropout=0.5, batch_norm=True))
    recorder = ModeRecorder()
    trainer = _trainer(tmp_path, [recorder])
    trainer.fit(model, datamodule=data)
    assert recorder.seen["train"] == {True}
    assert recorder.seen["val"] == {False} and recorder.seen["sanity"] == {False}

    before = _running_stats(model)
    trainer.validate(model, datamodule=data, verbose=False)
    trainer.test(model, datamodule=data, verbose=False)
    after = _running_stats(model)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert recorder.seen["test"] == {False}

    first = torch.cat(trainer.predict(model, datamodule=data))
    second = torch.cat(trainer.predict(model, datamodule=data))
    assert recorder.seen["predict"] == {False}
    assert torch.equal(first, second)
    assert torch.allclose(first.sum(1), torch.ones(len(first)))


class FixedLogits(nn.Module):
    """A "network" whose logits are extreme: where softmax-then-log would give inf."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[1000.0, -1000.0]]).expand(len(x), 2)


def test_the_loss_takes_logits_and_stays_finite_when_they_are_extreme() -> None:
    model = MNISTClassifier(FixedLogits(), num_classes=2)
    x, y = torch.zeros(2, 1, 28, 28), torch.tensor([0, 1])
    loss, preds, _ = model._step((x, y))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(1000.0)  # mean of 0 and 2000
    assert preds.tolist() == [0, 0]
