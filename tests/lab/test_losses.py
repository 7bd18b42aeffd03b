"""lab.losses.TextbookLoss: each (loss, output) pair is its textbook formula, trains through the
template's Classifier, never takes log(sigmoid), and saturates as the study claims."""

from __future__ import annotations

import itertools
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F

from lab.losses import LOSSES, OUTPUTS, TextbookLoss
from quiet_trainer import LossRecorder, quiet_trainer

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.errors import ConfigError
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import MLP

PAIRS = list(itertools.product(LOSSES, OUTPUTS))


@pytest.mark.parametrize(("loss", "output"), PAIRS)
def test_every_pair_trains_the_classifier(
    loss: str, output: str, fake_mnist: Path, tmp_path: Path
) -> None:
    L.seed_everything(0, verbose=False)
    recorder = LossRecorder()
    trainer = quiet_trainer(
        default_root_dir=tmp_path, limit_val_batches=1, num_sanity_val_steps=0, callbacks=[recorder]
    )
    model = Classifier(
        MLP(depth=1, width=32),
        optimizer=lambda p: torch.optim.Adam(p, lr=3e-3),
        loss=TextbookLoss(loss, output),
    )
    data = MNISTDataModule(str(fake_mnist), batch_size=100, eval_batch_size=200, val_size=200)
    trainer.fit(model, datamodule=data)
    losses = recorder.losses
    assert len(losses) == 10 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0]


def test_each_pair_is_its_textbook_formula() -> None:
    """Squared error on the squashed outputs, cross-entropy of the softmax or of each class's
    sigmoid."""
    logits, y = torch.randn(6, 10), torch.randint(0, 10, (6,))
    target = F.one_hot(y, 10).float()
    p, q = torch.sigmoid(logits), logits.softmax(1)
    expected = {
        ("cross_entropy", "softmax"): -(target * q.log()).sum(1).mean(),
        ("cross_entropy", "sigmoid"): -(target * p.log() + (1 - target) * (1 - p).log()).mean(),
        ("mse", "softmax"): ((q - target) ** 2).mean(),
        ("mse", "sigmoid"): ((p - target) ** 2).mean(),
    }
    for (loss, output), value in expected.items():
        torch.testing.assert_close(
            TextbookLoss(loss, output)(logits, y), value, msg=f"{loss} + {output}"
        )


def test_sigmoid_cross_entropy_is_taken_from_the_logits_never_as_log_of_a_sigmoid() -> None:
    # sigmoid(-200) is 0 in float32, so log(sigmoid(z)) would be -inf: the loss and gradient must
    # stay finite
    logits = torch.full((2, 10), -200.0)
    logits[1, 3] = 200.0  # example 1: sure of class 3, whose label is 0
    logits.requires_grad_(True)
    loss = TextbookLoss("cross_entropy", "sigmoid")(logits, torch.tensor([0, 0]))
    loss.backward()
    # -log sigmoid(-200) = 200 for each true class, log(1 + e^200) = 200 for the wrong sure class;
    # the rest ~0
    torch.testing.assert_close(loss, torch.tensor(3 * 200.0 / 20))
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 0] == pytest.approx(-1 / 20) and logits.grad[1, 3] == pytest.approx(
        1 / 20
    )


def _saturated_logit_grad(loss: str, output: str) -> float:
    """Largest gradient any logit gets on outputs saturated at the wrong class (summed, not
    averaged, loss)."""
    logits = torch.full((4, 10), -30.0)
    y = torch.tensor([0, 1, 2, 3])
    logits[torch.arange(4), y + 5] = 30.0  # sure of a wrong class, sure the right one is off
    logits.requires_grad_(True)
    TextbookLoss(loss, output)(logits, y).backward()
    # undo the mean
    scale = logits.numel() if (loss, output) != ("cross_entropy", "softmax") else len(y)
    return float(logits.grad.abs().max()) * scale


def test_squared_error_on_saturated_outputs_has_almost_no_gradient_cross_entropy_has_one() -> None:
    assert _saturated_logit_grad("mse", "sigmoid") < 1e-3
    assert _saturated_logit_grad("mse", "softmax") < 1e-3
    assert _saturated_logit_grad("cross_entropy", "sigmoid") > 0.5
    assert _saturated_logit_grad("cross_entropy", "softmax") > 0.5


def test_an_unknown_loss_or_output_is_refused_with_the_valid_names() -> None:
    with pytest.raises(
        ConfigError, match="unknown loss 'hinge'; choose one of: cross_entropy, mse"
    ):
        TextbookLoss("hinge")
    with pytest.raises(ConfigError, match="unknown output 'tanh'; choose one of: softmax, sigmoid"):
        TextbookLoss(output="tanh")
