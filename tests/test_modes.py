"""train()/eval() facts for dropout and batch norm, on the real modules and through Lightning's loops."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.models.components import CNN, MLP
from mnist_lab.models.mnist_module import MNISTClassifier


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_dropout_is_identity_and_deterministic_in_eval() -> None:
    net = MLP(depth=2, width=64, dropout=0.5)
    x = torch.randn(8, 1, 28, 28)
    net.train()
    assert not torch.equal(net(x), net(x))  # a new mask each call
    drop = net.blocks[0].drop
    h = torch.ones(1000)
    dropped = drop(h)
    assert set(dropped.unique().tolist()) <= {0.0, 2.0}  # PyTorch scales kept units by 1/(1-p) in training
    net.eval()
    assert torch.equal(drop(h), h)
    assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("make", [lambda: MLP(depth=2, width=32, batch_norm=True), lambda: CNN(batch_norm=True)])
def test_batch_norm_uses_running_stats_in_eval_and_batch_stats_in_train(make) -> None:
    net = make()
    x = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        net.train()
        net(x * 3 + 1)  # move the running statistics away from their start
        net.eval()
        alone = net(x[:1])
        in_batch = net(torch.cat([x[:1], x[1:] * 5]))[:1]
        assert torch.allclose(alone, in_batch, atol=1e-5)  # eval: one sample ignores its batch
        net.train()
        alone_train = net(torch.cat([x[:1], x[1:2]]))[:1]
        in_batch_train = net(torch.cat([x[:1], x[1:] * 5]))[:1]
        assert not torch.allclose(alone_train, in_batch_train, atol=1e-3)  # train: batch statistics


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
        default_root_dir=tmp_path, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks or [],
    )  # fmt: skip


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


def test_loss_is_cross_entropy_on_logits_and_stable_for_extreme_logits() -> None:
    """log-softmax inside the loss stays finite where softmax-then-log gives inf."""
    logits = torch.tensor([[1000.0, -1000.0]])
    target = torch.tensor([1])
    assert torch.isfinite(nn.functional.cross_entropy(logits, target))
    assert not torch.isfinite(-torch.log(torch.softmax(logits, 1))[0, 1])
    model = MNISTClassifier(MLP(depth=0))
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    loss, _, _ = model._step((x, y))
    assert torch.allclose(loss, nn.functional.cross_entropy(model(x), y))
