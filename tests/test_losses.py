"""The (loss, output) options: each pair trains, is restored from a checkpoint, and saturates as claimed."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.errors import ConfigError
from mnist_lab.models.components import MLP
from mnist_lab.models.losses import LOSSES, get_loss
from mnist_lab.models.mnist_module import MNISTClassifier
from quiet_trainer import LossRecorder, quiet_trainer

PAIRS = sorted(LOSSES)


@pytest.mark.parametrize(("loss", "output"), PAIRS)
def test_every_loss_and_output_trains_and_logs_the_usual_losses(
    loss: str, output: str, fake_mnist: Path, tmp_path: Path
) -> None:
    L.seed_everything(0, verbose=False)
    recorder = LossRecorder()
    losses = recorder.losses
    trainer = quiet_trainer(
        default_root_dir=tmp_path,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        log_every_n_steps=5,
        callbacks=[recorder],
    )
    net = MLP(depth=1, width=32)
    model = MNISTClassifier(net, optimizer=lambda p: torch.optim.Adam(p, lr=3e-3), loss=loss, output=output)
    data = MNISTDataModule(str(fake_mnist), batch_size=100, eval_batch_size=200, val_size=200)
    trainer.fit(model, datamodule=data)
    assert len(losses) == 10 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0]
    assert {"train/loss", "train/loss_epoch", "val/loss", "val/acc"} <= set(trainer.callback_metrics)


def test_the_default_is_torch_cross_entropy_itself_and_the_others_match_their_formulas() -> None:
    assert get_loss("cross_entropy", "softmax") is F.cross_entropy  # no wrapper on the hot path
    logits, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    target = F.one_hot(y, 10).float()
    p = torch.sigmoid(logits)
    bce = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
    torch.testing.assert_close(get_loss("cross_entropy", "sigmoid")(logits, y), bce)
    torch.testing.assert_close(get_loss("mse", "sigmoid")(logits, y), ((p - target) ** 2).mean())
    torch.testing.assert_close(get_loss("mse", "softmax")(logits, y), ((logits.softmax(1) - target) ** 2).mean())


def _saturated_logit_grad(loss: str, output: str) -> float:
    """Largest gradient any logit gets from its own term, on outputs saturated at the wrong class."""
    logits = torch.full((4, 10), -30.0)
    y = torch.tensor([0, 1, 2, 3])
    logits[torch.arange(4), y + 5] = 30.0  # sure of a wrong class, sure the right one is off
    logits.requires_grad_(True)
    get_loss(loss, output)(logits, y).backward()
    # the gradient of the summed loss; the mean over N (x C) only rescales it
    scale = logits.numel() if (loss, output) != ("cross_entropy", "softmax") else len(y)
    return float(logits.grad.abs().max()) * scale


def test_squared_error_on_saturated_outputs_has_almost_no_gradient_and_cross_entropy_keeps_one() -> None:
    assert _saturated_logit_grad("mse", "sigmoid") < 1e-3
    assert _saturated_logit_grad("mse", "softmax") < 1e-3
    assert _saturated_logit_grad("cross_entropy", "sigmoid") > 0.5
    assert _saturated_logit_grad("cross_entropy", "softmax") > 0.5
    huge = torch.full((1, 10), 100.0, requires_grad=True)  # from the logits: finite even far past saturation
    get_loss("cross_entropy", "sigmoid")(huge, torch.tensor([0])).backward()
    assert torch.isfinite(huge.grad).all()


def test_loss_and_output_are_hyperparameters_a_checkpoint_restores(tmp_path: Path) -> None:
    model = MNISTClassifier(MLP(depth=1, width=8), loss="mse", output="sigmoid")
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = MNISTClassifier.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    assert (loaded.hparams.loss, loaded.hparams.output) == ("mse", "sigmoid")
    assert loaded.loss_fn is get_loss("mse", "sigmoid")


def test_unknown_loss_or_output_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="unknown loss 'hinge'; choose one of: cross_entropy, mse"):
        MNISTClassifier(MLP(depth=0), loss="hinge")
    with pytest.raises(ConfigError, match="unknown output 'tanh'; choose one of: sigmoid, softmax"):
        MNISTClassifier(MLP(depth=0), output="tanh")
